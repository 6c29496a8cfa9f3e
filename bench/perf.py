#!/usr/bin/env python3
"""Measures the aifc client against `aifc sim` on this machine and prints the figures.

Usage: python3 bench/perf.py [path/to/aifc]   (default build/apps/aifc)

The simulator runs as its own process; the client's CPU time is read from /usr/bin/time.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

_paths = [a for a in sys.argv[1:] if not a.startswith("-") and not a.isdigit()]
AIFC = _paths[0] if _paths else os.path.join(os.path.dirname(__file__), "..", "build", "apps", "aifc")


# With two or more cores the simulator and the client get one core each, so that the client's
# figures are its own and not the simulator's threads competing for its core.
PIN_SIM = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 else []
PIN_CLIENT = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 else []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sim:
    def __init__(self, *args):
        self.port = free_port()
        self.proc = subprocess.Popen([*PIN_SIM, AIFC, "sim", "--port", str(self.port), "--threads", "1", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc.stdout.readline()  # "listening on ..."

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def bench(sim, *args, detailed=True):
    """Runs `aifc bench`; returns (result JSON, client CPU seconds, wall seconds).

    CPU time comes from wait4()'s rusage: microsecond resolution, the client process alone.
    `detailed` writes every request's record into the result (--save-detailed), as the
    measurement-error figures need.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*PIN_CLIENT, AIFC, "bench", "--base-url", sim.url(), "--disable-tqdm",
               "--save-result", *(["--save-detailed"] if detailed else []), "--result-dir", tmp, "--result-filename", "r.json",
               "--random-input-len", "16", "--ignore-eos", *args]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        err = proc.stderr.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"aifc bench failed ({proc.returncode}): {err}")
        with open(os.path.join(tmp, "r.json")) as f:
            return json.load(f), usage.ru_utime + usage.ru_stime, wall


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    pos = q / 100 * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def measurement_error_us(result):
    errs = []
    for rec in result["records"]:
        for got, sent in zip(rec["token_ns"], rec.get("server_token_ns", [])):
            errs.append((got - sent) / 1000)
    return errs


def main():
    print(f"machine: {os.cpu_count()} cores; simulator pinned to {PIN_SIM[2:] or 'any'}, client to {PIN_CLIENT[2:] or 'any'}\n")
    rows = []
    with Sim("--ttft-ms", "0", "--itl-ms", "0") as sim:
        base, base_cpu, _ = bench(sim, "--num-prompts", "1", "--random-output-len", "1", "--no-server-tokenizer",
                                  detailed=False)
        n_req = 20000
        # The median of 5 runs: on a shared machine single runs vary by 10-20%.
        runs = [bench(sim, "--num-prompts", str(n_req), "--random-output-len", "1", "--max-concurrency", "32",
                      "--no-server-tokenizer", detailed=False) for _ in range(5)]
        short, short_cpu, short_wall = sorted(runs, key=lambda r: r[1])[2]
        per_request_us = (short_cpu - base_cpu) / n_req * 1e6
        detailed_runs = [bench(sim, "--num-prompts", str(n_req), "--random-output-len", "1", "--max-concurrency",
                               "32", "--no-server-tokenizer")[1] for _ in range(5)]
        per_detailed_us = (sorted(detailed_runs)[2] - short_cpu) / n_req * 1e6
        n_long, out_len = 200, 1000
        long, long_cpu, long_wall = bench(sim, "--num-prompts", str(n_long), "--random-output-len", str(out_len),
                                          "--max-concurrency", "32")
        chunks = long["total_output_tokens"]
        per_chunk_us = (long_cpu - base_cpu - n_long * per_request_us * 1e-6) / chunks * 1e6
        rows += [
            ("client CPU per request (1-token answers, 32 streams)", f"{per_request_us:.1f} us"),
            ("  and for its record in a --save-detailed result", f"{per_detailed_us:.1f} us"),
            ("client CPU per chunk (1000-token answers, 32 streams)", f"{per_chunk_us:.2f} us"),
            ("request rate sustained (1-token answers, 32 streams)", f"{short['request_throughput']:.0f} req/s"),
            ("chunk rate sustained (32 streams)", f"{long['output_throughput']:.0f} chunks/s"),
        ]
    with Sim("--ttft-ms", "0", "--itl-ms", "20") as sim:
        for streams in (1, 64, 256, 1024):
            n = max(streams, 8)
            common = ["--num-prompts", str(n), "--max-concurrency", str(streams)]
            short, short_cpu, _ = bench(sim, *common, "--random-output-len", "50")
            r, cpu, wall = bench(sim, *common, "--random-output-len", "100")
            errs = measurement_error_us(r)
            late = [rec["send_ns"] - rec["scheduled_ns"] for rec in r["records"]]
            # The same requests with twice the tokens: the CPU difference is what the extra
            # chunks cost, each arriving on its own (20 ms apart per stream).
            per_chunk = (cpu - short_cpu) / max(1, r["total_output_tokens"] - short["total_output_tokens"]) * 1e6
            rows.append((f"{streams} streams: held / failed", f"{r['max_concurrent_requests']} / {r['failed']}"))
            rows.append((f"{streams} streams: measurement error p50 / p99 / max",
                         f"{pct(errs, 50):.0f} / {pct(errs, 99):.0f} / {max(errs):.0f} us  ({len(errs)} chunks)"))
            rows.append((f"{streams} streams: client CPU per chunk (chunks 20 ms apart)", f"{per_chunk:.2f} us"))
            rows.append((f"{streams} streams: client CPU share", f"{cpu / wall * 100:.0f} % of one core"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
