"""Figures of a distributed run on the Slurm test cluster: start spread, clock offsets, the
service's own CPU time, and the same schedule from one process for comparison.

    tests/cluster/start.sh && . /tmp/aifc-cluster/env.sh
    build/venv/bin/python bench/distributed.py [--agents 8] [--nodes 4] [--num-prompts 4000]
    # 64 agents need 16 CPUs a node: AIFC_CLUSTER_CPUS=16 tests/cluster/start.sh
    # --runs N repeats the distributed run and prints the start spreads' distribution

Needs the package installed (`pip install .`) and the test cluster's environment (env.sh).
Prints one line per figure; nothing here is asserted.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

import aifc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--num-prompts", type=int, default=4000)
    ap.add_argument("--request-rate", type=float, default=400)
    ap.add_argument("--runs", type=int, default=1,
                    help="distributed runs in a row (the start spread varies with the machine's load)")
    ap.add_argument("--aifc", help="the aifc program for the service and the agents "
                    "(default: this Python's `python -m aifc`)")
    args = ap.parse_args()
    workdir = os.environ["AIFC_CLUSTER_WORKDIR"]
    token = "bench-token"
    port = free_port()
    workload = dict(num_prompts=args.num_prompts, request_rate=args.request_rate, random_input_len=32,
                    random_output_len=16, percentile_metrics="ttft,tpot,itl,e2el", metric_percentiles="50,99")
    with aifc.Simulator(ttft_ms=20, itl_ms=5) as sim:
        state = f"/tmp/aifc-bench-service-{os.getpid()}"
        # Absolute: the agents start in the job directory.
        program = [os.path.abspath(args.aifc)] if args.aifc else [sys.executable, "-m", "aifc"]
        proc = subprocess.Popen([*program, "service", sim.url, "--port", str(port), "--state-dir",
                                 state, "--job-dir", workdir, "--slurm-backend", "cli", "--agent-command",
                                 *program, "agent"],
                                env=dict(os.environ, AIFC_API_TOKEN=token), stdout=subprocess.DEVNULL)
        try:
            svc = aifc.ServiceClient(f"http://127.0.0.1:{port}", token)
            for _ in range(100):
                try:
                    svc.health()
                    break
                except aifc.ServiceError:
                    time.sleep(0.1)
            spreads = []
            for run in range(args.runs):
                gid = f"bench-{os.getpid()}-{run}"
                t0 = time.monotonic()
                svc.create_group(gid, num_clients=args.agents, nodes=args.nodes, time_limit=10,
                                 partition=os.environ["AIFC_CLUSTER_PARTITION"], memory="900M", **workload)
                svc.wait(gid, "ready", timeout_s=300)
                t_ready = time.monotonic()
                cpu_before = cpu_seconds(proc.pid)
                svc.run(gid)
                svc.wait(gid, "finished", timeout_s=600)
                cpu_run = cpu_seconds(proc.pid) - cpu_before
                result = svc.result(gid, records=False)
                d = result.document["distributed"]
                offsets = [abs(r["clock_offset_ms"]) for r in d["per_rank"]]
                uncertainty = [r["clock_uncertainty_ms"] for r in d["per_rank"]]
                batches = sum(-(-r["completed"] // 2000) for r in d["per_rank"]) + len(d["per_rank"])
                print(f"agents                       {args.agents} on {len(d['per_node'])} nodes")
                print(f"create -> ready              {t_ready - t0:.2f} s")
                print(f"start spread                 {d['start_spread_ms']:.3f} ms")
                late = sorted(r["first_send_late_ms"] for r in d["per_rank"])
                worst = sorted(d["per_rank"], key=lambda r: -r["first_send_late_ms"])[:3]
                print("latest first sends           " + ", ".join(
                    f"rank {r['rank']} on {r['node']}: {r['first_send_late_ms']:.3f} ms" for r in worst))
                print(f"first send late (ms)         min {late[0]:.3f} median {late[len(late) // 2]:.3f} max {late[-1]:.3f}")
                print(f"clock offset |max|           {max(offsets):.3f} ms (uncertainty max {max(uncertainty):.3f} ms)")
                print(f"service CPU during the run   {cpu_run:.3f} s for {batches} result messages"
                      f" and heartbeats ({1e3 * cpu_run / batches:.2f} ms per result message, upper bound)")
                print(f"distributed: completed {result.summary['completed']} failed {result.summary['failed']}"
                      f" mean TTFT {result.summary['mean_ttft_ms']:.2f} ms p99 TTFT {result.summary['p99_ttft_ms']:.2f} ms"
                      f" mean ITL {result.summary['mean_itl_ms']:.2f} ms")
                spreads.append(d["start_spread_ms"])
            if args.runs > 1:
                spreads.sort()
                print(f"start spread over {args.runs} runs (ms): " + " ".join(f"{x:.2f}" for x in spreads) +
                      f"; median {spreads[len(spreads) // 2]:.2f}, under 2 ms in "
                      f"{sum(x < 2 for x in spreads)} of {args.runs}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        single = aifc.run_benchmark(base_url=sim.url, **workload)
        s = single.summary
        print(f"one process: completed {s['completed']} failed {s['failed']} mean TTFT {s['mean_ttft_ms']:.2f} ms"
              f" p99 TTFT {s['p99_ttft_ms']:.2f} ms mean ITL {s['mean_itl_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
