#!/usr/bin/env python3
"""Compares one workload driven from Python (aifc.run_benchmark) and from the C++ CLI.

Usage: build/venv/bin/python bench/python_overhead.py [path/to/aifc]
Run it with the Python that has the aifc package installed (`pip install .`).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from perf import AIFC as DEFAULT_AIFC, PIN_CLIENT, Sim  # noqa: E402

AIFC = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_AIFC
WORKLOAD = dict(num_prompts=3000, request_rate=500, random_input_len=64, random_output_len=32, seed=1)


def measure(cmd):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.read()}")
    return out, usage.ru_utime + usage.ru_stime, wall


def cli_run(url, tmp):
    args = [f"--{k.replace('_', '-')}={v}" for k, v in WORKLOAD.items()]
    measure_out = measure([*PIN_CLIENT, AIFC, "bench", "--base-url", url, *args, "--disable-tqdm", "--save-result",
                           "--result-dir", tmp, "--result-filename", "cli.json"])
    with open(os.path.join(tmp, "cli.json")) as f:
        return json.load(f), measure_out[1]


def python_run(url):
    code = ("import aifc, json, sys; r = aifc.run_benchmark(base_url=sys.argv[1], **json.loads(sys.argv[2])); "
            "print(json.dumps(r.summary))")
    out, cpu, _ = measure([*PIN_CLIENT, sys.executable, "-c", code, url, json.dumps(WORKLOAD)])
    return json.loads(out), cpu


def main():
    _, import_cpu, _ = measure([*PIN_CLIENT, sys.executable, "-c", "import aifc"])
    rows = []
    with Sim("--ttft-ms", "10", "--itl-ms", "2") as sim, tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            c, c_cpu = cli_run(sim.url(), tmp)
            p, p_cpu = python_run(sim.url())
            rows.append((c, c_cpu, p, p_cpu))
    print(f"workload: {WORKLOAD}; `import aifc` alone costs {import_cpu * 1e3:.0f} ms CPU\n")
    print(f"{'':28}{'C++ CLI':>14}{'Python':>14}")
    for i, (c, c_cpu, p, p_cpu) in enumerate(rows, 1):
        print(f"run {i}: client CPU (s)          {c_cpu:>10.3f}    {p_cpu:>10.3f}")
        for key in ("request_throughput", "mean_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "p99_lateness_ms"):
            print(f"       {key:<22}{c[key]:>10.3f}    {p[key]:>10.3f}")


if __name__ == "__main__":
    main()
