#!/usr/bin/env python3
"""Measures what `aifc sim` can feed a client on one core, and prints the figures.

Usage: python3 bench/sim_capacity.py [path/to/aifc] [--streams N]   (default build/apps/aifc, 10000)

Each stream lasts about 5 s (5000 ms / ITL tokens).

The simulator runs with one event-loop thread pinned to CPU 0; `aifc bench` is pinned to CPU 1.
Printed per scenario: streams held and failures, the client's TTFT against the simulator's
setting, the simulator's own send lateness (each chunk's write time minus its due time, from its
/metrics), the client's measurement error, and the simulator's CPU per chunk (from
/proc/<pid>/stat, so the client's speed does not enter it).
"""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from perf import AIFC, Sim, bench, measurement_error_us, pct  # noqa: E402


def sim_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lateness_us(sim):
    text = urllib.request.urlopen(sim.url() + "/metrics").read().decode()
    q = dict(re.findall(r'aifc_sim_send_lateness_seconds\{quantile="([0-9.]+)"\} (\S+)', text))
    return {k: float(v) * 1e6 for k, v in q.items()}


def scenario(name, sim_args, bench_args, configured_ttft_ms):
    with Sim(*sim_args) as sim:
        cpu0 = sim_cpu_seconds(sim.proc.pid)
        r, _, wall = bench(sim, *bench_args)
        sim_cpu = sim_cpu_seconds(sim.proc.pid) - cpu0
        late = lateness_us(sim)
    errs = measurement_error_us(r)
    chunks = r["total_output_tokens"]
    rows = [
        (f"{name}: streams held / completed / failed",
         f"{r['max_concurrent_requests']} / {r['completed']} / {r['failed']}"),
        (f"{name}: client TTFT p50 / p99 (simulator set to {configured_ttft_ms} ms)",
         f"{r['median_ttft_ms']:.1f} / {r['p99_ttft_ms']:.1f} ms"),
        (f"{name}: simulator send lateness p50 / p99 / max",
         f"{late.get('0.5', float('nan')):.0f} / {late.get('0.99', float('nan')):.0f} / "
         f"{late.get('1', float('nan')):.0f} us"),
        (f"{name}: client measurement error p50 / p99", f"{pct(errs, 50):.0f} / {pct(errs, 99):.0f} us"),
        (f"{name}: chunks, chunk rate", f"{chunks}, {chunks / wall:,.0f} chunks/s over {wall:.1f} s"),
        (f"{name}: simulator CPU per chunk (one core)",
         f"{sim_cpu / max(1, chunks) * 1e6:.2f} us = {chunks / max(sim_cpu, 1e-9):,.0f} chunks per CPU-second"),
    ]
    return rows


def main():
    streams = 10000
    if "--streams" in sys.argv:
        streams = int(sys.argv[sys.argv.index("--streams") + 1])
    print(f"aifc: {AIFC}; {os.cpu_count()} cores; simulator on CPU 0 (1 thread), client on CPU 1\n")
    rows = []
    # Streams x tokens/s is the chunk rate the simulator must write, each chunk on its own.
    for n, itl in ((3000, 20), (streams, 500), (streams, 100), (streams, 20)):
        rows += scenario(
            f"{n} streams, TTFT 20 ms, ITL {itl} ms",
            ["--ttft-ms", "20", "--itl-ms", str(itl)],
            ["--num-prompts", str(n), "--max-concurrency", str(n), "--random-output-len", str(5000 // itl)],
            20)
    rows += scenario(
        "back to back, 64 streams x 20000 tokens",
        ["--ttft-ms", "0", "--itl-ms", "0"],
        ["--num-prompts", "64", "--max-concurrency", "64", "--random-output-len", "20000"],
        0)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
