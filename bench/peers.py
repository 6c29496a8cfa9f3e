#!/usr/bin/env python3
"""aifc side by side with the tools its users would otherwise pick, on this machine.

Usage:
  python3 bench/peers.py --install            # once: vllm, aiperf, guidellm into their own venvs
  python3 bench/peers.py [--tools aifc,vllm,aiperf,guidellm] [--aifc build/apps/aifc]

Each tool runs against `aifc sim` (its own process, pinned to CPU 0; the tool to CPU 1) with the
same workload: 16-token prompts, streaming /v1/completions, every answer exactly as long as asked
(ignore_eos). A local tokenizer is built offline (a small byte-level BPE over plain words),
so no tool reaches the network. Printed per tool and workload: client CPU per streamed chunk while
the run lasts and for the whole process (start-up included, in brackets), the chunk rate, and the
error of the reported mean TTFT against the simulator's setting. Not run in CI: the peers are
large (vllm pulls torch) and the figures are for the README, with the date and versions.
"""
import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from perf import PIN_CLIENT, PIN_SIM, free_port  # noqa: E402
VENVS = os.environ.get("AIFC_PEERS_DIR", "/var/cache/aifc-peers")
PINS = {"vllm": "vllm==0.33.*", "aiperf": "aiperf==0.13.*", "guidellm": "guidellm==0.8.*"}
PIN_TOOL = PIN_CLIENT  # perf.py's pinning: the simulator on CPU 0, the tool on CPU 1

# (name, simulator TTFT ms, ITL ms, prompts, output tokens, concurrency)
WORKLOADS = [
    ("back to back: 2000 x 256 tokens, 256 concurrent", 0, 0, 2000, 256, 256),
    ("5 ms apart: 400 x 64 tokens, 64 concurrent", 20, 5, 400, 64, 64),
]


def install():
    os.makedirs(VENVS, exist_ok=True)
    for tool, pin in PINS.items():
        venv = os.path.join(VENVS, tool)
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--upgrade", "pip"], check=True)
        print(f"installing {pin} into {venv}", flush=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", pin], check=True)


def version(tool):
    if tool == "aifc":
        return "this tree"
    out = subprocess.run([os.path.join(VENVS, tool, "bin", "python"), "-c",
                          f"import importlib.metadata as m; print(m.version('{tool}'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def build_tokenizer(directory):
    """A word-level tokenizer over plain words, saved as a Hugging Face tokenizer directory."""
    pythons = [os.path.join(VENVS, t, "bin", "python") for t in ("guidellm", "vllm", "aiperf")]
    python = next((p for p in pythons if os.path.exists(p) and subprocess.run(
        [p, "-c", "import tokenizers, transformers"], capture_output=True).returncode == 0), None)
    if python is None:
        sys.exit("no peer venv has tokenizers and transformers to build the tokenizer with")
    # A small byte-level BPE trained on plain words: GuideLLM's synthetic prompts need a
    # tokenizer that decodes to text (a word-level one without a decoder breaks them).
    script = f"""
import random
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import PreTrainedTokenizerFast
rng = random.Random(0)
words = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
         "as", "with"] + [f"w{{i}}" for i in range(2000)]
corpus = [" ".join(rng.choice(words) for _ in range(50)) for _ in range(2000)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=3000, special_tokens=["<|endoftext|>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
fast.model_max_length = 1 << 20
fast.save_pretrained({directory!r})
"""
    subprocess.run([python, "-c", script], check=True)
    with open(os.path.join(directory, "config.json"), "w") as f:  # some tools want a model config
        json.dump({"model_type": "gpt2", "vocab_size": 3000, "n_positions": 1 << 20}, f)
    return directory


def tree_cpu_seconds(root):
    """User + system CPU of `root` and its descendants, live or reaped by them (from /proc)."""
    parent, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    total = 0.0
    for pid, seconds in cpu.items():
        p = pid
        while p in parent and p != root and p > 1:
            p = parent[p]
        if p == root:
            total += seconds
    return total


def sim_counter(url, prefix):
    """A counter from the simulator's /metrics (0 when it does not answer)."""
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=1).read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(float(line.split()[-1]))
    return 0


def requests_seen(url):
    return sim_counter(url, 'aifc_sim_requests_total{outcome="received"}')


def command(tool, url, tokenizer, out, prompts, output_len, concurrency):
    if tool == "aifc":
        return [os.path.join(HERE, "..", "build", "apps", "aifc"), "bench", "--base-url", url, "--model", "aifc-sim",
                "--dataset-name", "random", "--random-input-len", "16", "--random-output-len", str(output_len),
                "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--ignore-eos",
                "--disable-tqdm", "--save-result", "--result-dir", out, "--result-filename", "result.json"]
    if tool == "vllm":
        return [os.path.join(VENVS, "vllm", "bin", "vllm"), "bench", "serve", "--backend", "openai", "--base-url", url,
                "--model", "aifc-sim", "--tokenizer", tokenizer, "--dataset-name", "random",
                "--random-input-len", "16", "--random-output-len", str(output_len), "--num-prompts", str(prompts),
                "--max-concurrency", str(concurrency), "--ignore-eos", "--disable-tqdm", "--save-result",
                "--result-dir", out, "--result-filename", "result.json"]
    if tool == "aiperf":
        return [os.path.join(VENVS, "aiperf", "bin", "aiperf"), "profile", "--model", "aifc-sim", "--url", url,
                "--endpoint-type", "completions", "--streaming", "--tokenizer", tokenizer,
                "--synthetic-input-tokens-mean", "16", "--synthetic-input-tokens-stddev", "0",
                "--output-tokens-mean", str(output_len), "--output-tokens-stddev", "0",
                "--extra-inputs", "ignore_eos:true", "--request-count", str(prompts),
                "--concurrency", str(concurrency), "--artifact-dir", out, "--ui-type", "none"]
    if tool == "guidellm":  # 0.8's registry options: kind=TYPE,key=value,...
        return [os.path.join(VENVS, "guidellm", "bin", "guidellm"), "run",
                "--backend", f"kind=openai_http,target={url},model=aifc-sim,request_format=/v1/completions",
                "--profile", f"kind=concurrent,streams={concurrency}",
                "--constraint", f"kind=max_requests,count={prompts}",
                "--data", f"kind=synthetic_text,prompt_tokens=16,output_tokens={output_len}",
                "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
                "--output", f"kind=json,path={os.path.join(out, 'result.json')}", "--disable-console-interactive"]
    raise ValueError(tool)


def mean_ttft_ms(tool, out):
    """The mean TTFT the tool reported, from its own output file."""
    if tool in ("aifc", "vllm"):
        with open(os.path.join(out, "result.json")) as f:
            return json.load(f)["mean_ttft_ms"]
    if tool == "aiperf":
        path = next(iter(glob.glob(os.path.join(out, "**", "profile_export_aiperf.json"), recursive=True)))
        with open(path) as f:
            doc = json.load(f)
        ttft = doc.get("time_to_first_token") or next(
            r for r in doc.get("records", []) if r.get("tag") == "time_to_first_token")
        return float(ttft["avg"])
    if tool == "guidellm":
        with open(os.path.join(out, "result.json")) as f:
            doc = json.load(f)
        metrics = doc["benchmarks"][0]["metrics"]
        return float(metrics["time_to_first_token_ms"]["successful"]["mean"])
    raise ValueError(tool)


def run_one(tool, workload, tokenizer, aifc):
    name, ttft, itl, prompts, output_len, concurrency = workload
    port = free_port()
    sim = subprocess.Popen([*PIN_SIM, aifc, "sim", "--port", str(port), "--threads", "1", "--ttft-ms", str(ttft),
                            "--itl-ms", str(itl)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim.stdout.readline()
    url = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as out:
            cmd = command(tool, url, tokenizer, out, prompts, output_len, concurrency)
            if tool == "aifc":
                cmd[0] = aifc
            env = dict(os.environ, OPENAI_API_KEY="none")
            if tool != "aiperf":  # AIPerf 0.13 refuses a local tokenizer path when offline
                env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            cpu_before = resource_children_cpu()
            start = time.monotonic()
            proc = subprocess.Popen([*PIN_TOOL, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env)
            cpu_at_start, run_start = None, start
            while proc.poll() is None:  # poll() reaps it: its rusage joins RUSAGE_CHILDREN
                if cpu_at_start is None and requests_seen(url) > 0:
                    cpu_at_start = tree_cpu_seconds(proc.pid)
                    run_start = time.monotonic()
                time.sleep(0.02)
            wall_end = time.monotonic()
            total_cpu = resource_children_cpu() - cpu_before
            log = proc.stdout.read()
            if proc.returncode != 0:
                return {"error": f"exit {proc.returncode}: {log[-600:]}"}
            chunks = sim_counter(url, "vllm:generation_tokens_total")  # what was streamed, not asked
            if chunks < prompts * output_len:
                return {"error": f"only {chunks} of {prompts * output_len} tokens were streamed: {log[-400:]}"}
            return {
                "run_us": (total_cpu - (cpu_at_start or 0)) / chunks * 1e6,
                "total_us": total_cpu / chunks * 1e6,
                "rate": chunks / max(1e-9, wall_end - run_start),
                "ttft_error_ms": mean_ttft_ms(tool, out) - ttft,
            }
    finally:
        sim.terminate()
        sim.wait()


def resource_children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--install", action="store_true", help="install the peers into their venvs and stop")
    ap.add_argument("--tools", default="aifc,vllm,aiperf,guidellm")
    ap.add_argument("--aifc", default=os.path.join(HERE, "..", "build", "apps", "aifc"))
    args = ap.parse_args()
    if args.install:
        install()
        return
    tools = [t for t in args.tools.split(",") if t]
    missing = [t for t in tools if t != "aifc" and not os.path.exists(os.path.join(VENVS, t, "bin", "python"))]
    if missing:
        sys.exit(f"not installed: {', '.join(missing)} (run python3 bench/peers.py --install)")
    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = build_tokenizer(tok_dir) if set(tools) - {"aifc"} else None
        print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; simulator on CPU 0, tool on CPU 1")
        print("versions: " + ", ".join(f"{t} {version(t)}" for t in tools) + "\n")
        print("client CPU per chunk while the run lasts (whole process), chunk rate, error of mean TTFT")
        for workload in WORKLOADS:
            print(f"\n{workload[0]} (simulator TTFT {workload[1]} ms, ITL {workload[2]} ms)")
            for tool in tools:
                r = run_one(tool, workload, tokenizer, os.path.abspath(args.aifc))
                if "error" in r:
                    print(f"  {tool:<9} failed: {r['error']}")
                    continue
                print(f"  {tool:<9} {r['run_us']:7.1f} us ({r['total_us']:.1f})  {r['rate']:>10,.0f} chunks/s  "
                      f"TTFT error {r['ttft_error_ms']:+.1f} ms")


if __name__ == "__main__":
    main()
