"""aifc's numbers against `vllm bench serve`'s own way of getting them.

`vllm_metrics` and `VllmLoop` below re-implement, from reading vLLM 0.33's
vllm/benchmarks/serve.py (calculate_metrics, get_request, benchmark) and its OpenAI completions
request function, what `vllm bench serve` computes and how it sends: no vLLM code is copied or
installed. The first test feeds aifc's own per-request data to vLLM's formulas and asks for the
same summary to float precision; the second runs one workload through both clients against one
simulator and compares every key both write.
"""
import asyncio
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import aifc

MS = 1000.0


def vllm_metrics(outputs, dur_s, percentiles, goodput_ms, metrics):
    """vLLM's calculate_metrics and the result keys its benchmark writes from it. `outputs`: dicts
    of success, prompt_len, output_tokens, ttft, itl (list), latency, start_time (seconds)."""
    lens, ttfts, tpots, all_tpots, itls, e2els = [], [], [], [], [], []
    total_input = completed = good = 0
    for o in outputs:
        if not o["success"]:
            lens.append(0)
            continue
        n = o["output_tokens"] or 1  # vLLM counts with its tokenizer here; aifc's sim reports usage
        lens.append(n)
        total_input += o["prompt_len"]
        tpot = 0.0
        if n > 1:
            tpot = (o["latency"] - o["ttft"]) / (n - 1)
            tpots.append(tpot)
        all_tpots.append(tpot)
        itls += o["itl"]
        ttfts.append(o["ttft"])
        e2els.append(o["latency"])
        completed += 1
    if goodput_ms:
        columns = {"ttft": ttfts, "tpot": all_tpots, "e2el": e2els}
        chosen = [(columns[k], v / MS) for k, v in goodput_ms.items()]
        for i in range(completed):
            good += all(values[i] <= slo for values, slo in chosen)
    ok = [o for o in outputs if o["success"]]
    peak_tokens, peak_concurrency = 0.0, 0
    if ok:
        t0 = min(o["start_time"] for o in ok)
        end = max(o["start_time"] + o["latency"] for o in ok)
        buckets = np.zeros(int(np.ceil(end - t0)) + 1)
        for o in ok:
            t = o["start_time"] + o["ttft"]
            times = [t]
            for gap in o["itl"]:
                t += gap
                times.append(t)
            for t in times:
                b = int(t - t0)
                if 0 <= b < len(buckets):
                    buckets[b] += 1
        events = sorted([(o["start_time"], 1) for o in ok] +
                        [(o["start_time"] + o["latency"], -1) for o in ok])
        level = 0
        for _, step in events:
            level += step
            peak_concurrency = max(peak_concurrency, level)
        peak_tokens = float(np.max(buckets))
    out = {
        "completed": completed,
        "failed": len(outputs) - completed,
        "total_input_tokens": total_input,
        "total_output_tokens": sum(lens),
        "request_throughput": completed / dur_s,
        "request_goodput": good / dur_s if goodput_ms else None,
        "output_throughput": sum(lens) / dur_s,
        "total_token_throughput": (total_input + sum(lens)) / dur_s,
        "max_output_tokens_per_s": peak_tokens,
        "max_concurrent_requests": peak_concurrency,
    }
    samples = {"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els}
    for name in metrics:
        values = samples[name] or 0
        out[f"mean_{name}_ms"] = np.mean(values) * MS
        out[f"median_{name}_ms"] = np.median(values) * MS
        out[f"std_{name}_ms"] = np.std(values) * MS
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{name}_ms"] = np.percentile(values, p) * MS
    return out, lens


def outputs_of(doc):
    """vLLM's per-request outputs from a detailed result (its own array keys)."""
    return [{"success": doc["errors"][i] == "", "prompt_len": doc["input_lens"][i],
             "output_tokens": doc["output_lens"][i], "ttft": doc["ttfts"][i], "itl": doc["itls"][i],
             "latency": doc["latencies"][i], "start_time": doc["start_times"][i]}
            for i in range(len(doc["errors"]))]


def assert_same(ours, theirs, keys, rel=1e-9):
    for key in keys:
        assert key in ours, key
        if theirs[key] is None:
            assert ours[key] is None, key
        else:
            assert ours[key] == pytest.approx(theirs[key], rel=rel, abs=1e-9), key


def run_aifc(tmp_path, *flags):
    p = subprocess.run([sys.executable, "-m", "aifc", "bench", *flags, "--save-detailed", "--result-dir",
                        str(tmp_path), "--result-filename", "aifc.json", "--disable-tqdm"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.load(open(tmp_path / "aifc.json"))


def test_aifc_summary_is_vllms_formulas_on_aifcs_own_data(tmp_path):
    # Varied lengths (EOS on, a range ratio), failures, a concurrency limit, bursty arrivals,
    # goodput on three SLOs and a fractional percentile: every branch of the formulas.
    doc = run_aifc(tmp_path, "--sim", "--num-prompts", "120", "--request-rate", "50", "--burstiness", "0.5",
                   "--max-concurrency", "6", "--random-input-len", "16", "--random-output-len", "12",
                   "--random-range-ratio", "0.5", "--no-ignore-eos", "--sim-eos-probability", "0.15",
                   "--sim-error-rate", "0.1", "--sim-ttft-ms", "uniform:2:20", "--sim-itl-ms", "uniform:1:4",
                   "--goodput", "ttft:12", "tpot:3", "e2el:40", "--percentile-metrics", "ttft,tpot,itl,e2el",
                   "--metric-percentiles", "25,50,90,99.9")
    outputs = outputs_of(doc)
    assert 0 < sum(not o["success"] for o in outputs) < len(outputs)  # failures were measured
    assert any(o["success"] and o["output_tokens"] == 1 for o in outputs) or \
        len({o["output_tokens"] for o in outputs if o["success"]}) > 3
    theirs, lens = vllm_metrics(outputs, doc["duration"], [25, 50, 90, 99.9],
                                {"ttft": 12, "tpot": 3, "e2el": 40}, ["ttft", "tpot", "itl", "e2el"])
    assert_same(doc, theirs, theirs.keys())
    assert doc["output_lens"] == lens


def test_aifc_and_vllms_request_loop_write_the_same_result(tmp_path):
    # One workload through both clients against one simulator with fixed delays: the same prompts
    # (a custom file, in order), the same output lengths, the same schedule rules.
    prompts = [" ".join(f"w{i}x{j}" for j in range(5 + i % 7)) for i in range(24)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    with aifc.Simulator(ttft_ms=20, itl_ms=3) as sim:
        common = ["--dataset-name", "custom", "--dataset-path", str(path), "--disable-shuffle",
                  "--custom-output-len", "6", "--ignore-eos", "--num-prompts", "24", "--request-rate", "200",
                  "--max-concurrency", "4", "--percentile-metrics", "ttft,tpot,itl,e2el",
                  "--metric-percentiles", "50,99", "--goodput", "ttft:500"]
        ours = run_aifc(tmp_path, "--base-url", sim.url, "--model", sim.config.model, *common)
        loop = VllmLoop(sim.url, sim.config.model, prompts, output_len=6, request_rate=200,
                        max_concurrency=4, seed=0)
        theirs = loop.run()
    summary, _ = vllm_metrics(theirs["outputs"], theirs["duration"], [50, 99], {"ttft": 500},
                              ["ttft", "tpot", "itl", "e2el"])
    result = {"duration": theirs["duration"], **summary, **theirs["arrays"]}
    # Every key vLLM writes is in aifc's result.
    assert set(result) <= set(ours), set(result) - set(ours)
    # What does not depend on timing is equal.
    for key in ("completed", "failed", "total_input_tokens", "total_output_tokens", "input_lens", "output_lens",
                "errors"):
        assert ours[key] == result[key], key
    assert [len(g) for g in ours["itls"]] == [len(g) for g in result["itls"]]
    # Timing: both see at least the server's 20 ms to the first token, and consistent statistics.
    for r in (ours, result):
        assert min(r["ttfts"]) >= 0.020
        assert r["p99_ttft_ms"] >= r["median_ttft_ms"] >= 20.0
        assert r["mean_e2el_ms"] > r["mean_ttft_ms"]
        assert r["request_goodput"] <= r["request_throughput"]
        assert 1 <= r["max_concurrent_requests"] <= 4


class VllmLoop:
    """vLLM's benchmark loop, reduced to the OpenAI completions backend: arrivals drawn with
    numpy's gamma and stretched so the last leaves at N/rate, a semaphore for max_concurrency,
    one streaming request per task, timestamps taken as each SSE event is parsed."""

    def __init__(self, base_url, model, prompts, output_len, request_rate, max_concurrency, seed,
                 burstiness=1.0):
        host_port = base_url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.model, self.prompts, self.output_len = model, prompts, output_len
        self.rate, self.limit, self.seed, self.burstiness = request_rate, max_concurrency, seed, burstiness

    def delays(self):
        np.random.seed(self.seed)
        theta = 1.0 / (self.rate * self.burstiness)
        gaps = [np.random.gamma(shape=self.burstiness, scale=theta) for _ in self.prompts]
        at = np.cumsum(gaps)
        return list(at * (len(self.prompts) / self.rate) / at[-1])

    async def request(self, prompt):
        out = {"success": False, "prompt_len": len(prompt.split()), "output_tokens": 0, "ttft": 0.0,
               "itl": [], "latency": 0.0, "start_time": 0.0, "text": "", "error": ""}
        body = json.dumps({"model": self.model, "prompt": prompt, "max_tokens": self.output_len,
                           "stream": True, "stream_options": {"include_usage": True},
                           "ignore_eos": True}).encode()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        start = time.perf_counter()
        out["start_time"] = start
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        status = await reader.readline()
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            chunked |= line.lower().startswith(b"transfer-encoding: chunked")
        last = start
        pending = b""
        while True:
            if chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                data = await reader.readexactly(size)
                await reader.readline()
            else:
                data = await reader.read(65536)
                if not data:
                    break
            pending += data
            while b"\n\n" in pending:
                event, pending = pending.split(b"\n\n", 1)
                payload = event.decode().removeprefix("data: ").strip()
                if payload == "[DONE]" or not payload:
                    continue
                chunk = json.loads(payload)
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    now = time.perf_counter()
                    if out["ttft"] == 0.0:
                        out["ttft"] = now - start
                    else:
                        out["itl"].append(now - last)
                    last = now
                    out["text"] += chunk["choices"][0]["text"]
                elif chunk.get("usage"):
                    out["output_tokens"] = chunk["usage"]["completion_tokens"]
        writer.close()
        out["latency"] = last - start
        out["success"] = status.split()[1] == b"200"
        if not out["success"]:
            out["error"] = status.decode().strip()
        return out

    async def main(self):
        semaphore = asyncio.Semaphore(self.limit)

        async def limited(prompt):
            arrival = time.perf_counter()
            async with semaphore:
                out = await self.request(prompt)
            out["queue_time"] = out["start_time"] - arrival  # vLLM's client_queue_time
            return out

        tasks = []
        begin = time.perf_counter()
        for prompt, at in zip(self.prompts, self.delays()):
            wait = begin + at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(limited(prompt)))
        outputs = await asyncio.gather(*tasks)
        return outputs, time.perf_counter() - begin

    def run(self):
        outputs, duration = asyncio.run(self.main())
        arrays = {"input_lens": [o["prompt_len"] for o in outputs],
                  "output_lens": [o["output_tokens"] if o["success"] else 0 for o in outputs],
                  "ttfts": [o["ttft"] for o in outputs], "itls": [o["itl"] for o in outputs],
                  "latencies": [o["latency"] for o in outputs], "start_times": [o["start_time"] for o in outputs],
                  "queue_times": [o["queue_time"] for o in outputs], "generated_texts": [o["text"] for o in outputs],
                  "errors": [o["error"] for o in outputs], "rtfx": 0.0}
        return {"outputs": outputs, "duration": duration, "arrays": arrays}
