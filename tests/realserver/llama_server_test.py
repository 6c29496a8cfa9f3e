#!/usr/bin/env python3
"""aifc bench against a real llama.cpp server (label `realserver`).

usage: llama_server_test.py AIFC_PROGRAM

Needs AIFC_LLAMA_SERVER (the llama-server binary) and AIFC_TINY_MODEL (a GGUF model), both
set by scripts/install-realserver.sh's env.sh. Without them it reports itself skipped (exit 77),
unless AIFC_REQUIRE_REALSERVER=1 makes that a failure.

Streaming and not, completions and chat, concurrency 1 and 8, each checked for: no false
failures (this server closes the connection after every streamed response while its headers
promise keep-alive), output tokens equal to the server's own counters, prompt lengths as asked
(its /tokenize speaks llama.cpp's shape, not vLLM's), and the requested length held.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77
PROMPTS, INPUT_LEN, OUTPUT_LEN = 16, 24, 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(url):
    """The server's own Prometheus counters (llamacpp:*)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def start_server(binary, model, log):
    port = free_port()
    cmd = [binary, "--model", model, "--host", "127.0.0.1", "--port", str(port), "--ctx-size",
           "4096", "--parallel", "8", "--threads", "1", "--metrics", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}; see {log.name}")
        try:
            if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"llama-server did not become healthy in 120 s; see {log.name}")


def main():
    aifc = sys.argv[1]
    binary, model = os.environ.get("AIFC_LLAMA_SERVER"), os.environ.get("AIFC_TINY_MODEL")
    if not binary or not model or not os.path.exists(binary) or not os.path.exists(model):
        why = "AIFC_LLAMA_SERVER / AIFC_TINY_MODEL not set (run scripts/install-realserver.sh)"
        if os.environ.get("AIFC_REQUIRE_REALSERVER") == "1":
            print(f"FAIL: {why}")
            return 1
        print(f"skipped: {why}")
        return SKIP

    passed, failures = 0, []
    tmp = tempfile.mkdtemp(prefix="aifc-realserver-")
    with open(os.path.join(tmp, "llama-server.log"), "w") as log:
        proc, url = start_server(binary, model, log)
        try:
            for endpoint in ("/v1/completions", "/v1/chat/completions"):
                for stream in (True, False):
                    for concurrency in (1, 8):
                        case = f"{endpoint} stream={stream} concurrency={concurrency}"
                        problems = run_case(aifc, url, tmp, endpoint, stream, concurrency)
                        if problems:
                            failures.append(f"{case}: " + "; ".join(problems))
                            print(f"FAIL {case}: " + "; ".join(problems))
                        else:
                            passed += 1
                            print(f"ok   {case}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


def run_case(aifc, url, tmp, endpoint, stream, concurrency):
    before = metrics(url)
    name = f"r{len(os.listdir(tmp))}.json"
    cmd = [aifc, "bench", "--base-url", url, "--endpoint", endpoint, "--num-prompts", str(PROMPTS),
           "--random-input-len", str(INPUT_LEN), "--random-output-len", str(OUTPUT_LEN),
           "--ignore-eos", "--max-concurrency", str(concurrency), "--disable-tqdm",
           "--save-detailed", "--result-dir", tmp, "--result-filename", name, "--seed", "3"]
    if not stream:
        cmd.append("--no-stream-responses")
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        return [f"aifc bench exited {run.returncode}: {run.stderr[-500:]}"]
    after = metrics(url)
    r = json.load(open(os.path.join(tmp, name)))
    problems = []

    def check(ok, what):
        if not ok:
            problems.append(what)

    check(r["failed"] == 0, f"{r['failed']} failed: {r['errors_by_kind']} {set(r['errors'])}")
    check(r["completed"] == PROMPTS, f"completed {r['completed']}")
    predicted = after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"]
    check(r["total_output_tokens"] == predicted,
          f"output tokens {r['total_output_tokens']} != the server's {predicted}")
    check(r["output_lens"] == [OUTPUT_LEN] * PROMPTS, f"output lengths {r['output_lens']}")
    check(r["exceeded_requested_length"] == 0, "answers longer than asked")
    # The server counts a prompt once, or partly as cached when a slot holds its prefix.
    prompt = (after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]
              + after.get("llamacpp:prompt_tokens_cached_total", 0)
              - before.get("llamacpp:prompt_tokens_cached_total", 0))
    check(r["total_input_tokens"] == prompt,
          f"input tokens {r['total_input_tokens']} != the server's {prompt}")
    check(r["input_tokens_exact"] is True, "input tokens not exact")
    lens = r["input_lens"]
    if endpoint == "/v1/completions":
        # Exactly as asked, plus the beginning-of-sequence token the server adds.
        check(lens == [INPUT_LEN + 1] * PROMPTS, f"prompt lengths {lens}, asked {INPUT_LEN}")
    else:
        # The chat template adds the same tokens to every prompt; only where it meets the first
        # word (no word-start mark after its newline) may the split differ by a token or two.
        check(min(lens) > INPUT_LEN and max(lens) - min(lens) <= 2, f"chat prompt lengths {lens}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
