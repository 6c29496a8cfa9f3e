import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import aifc


def test_run_benchmark_uses_vllm_flag_names(sim):
    result = aifc.run_benchmark(base_url=sim.url, num_prompts=40, request_rate=200, random_input_len=16,
                                random_output_len=6, max_concurrency=8, goodput={"ttft": 1000, "tpot": 100},
                                percentile_metrics=["ttft", "itl", "e2el"], metric_percentiles=[50, 99],
                                metadata={"team": "hpc"})
    s = result.summary
    assert s["completed"] == 40
    assert s["max_concurrent_requests"] <= 8
    assert s["request_goodput"] > 0
    for key in ("p50_ttft_ms", "p99_itl_ms", "mean_e2el_ms", "mean_lateness_ms"):
        assert key in s
    assert "p99_tpot_ms" not in s
    assert result.document["team"] == "hpc"
    assert result.document["model_id"] == "aifc-sim"
    table = result.table()
    assert "Request rate configured (RPS):           200.00" in table
    assert "Maximum request concurrency:             8" in table


def test_probe_requests_reach_the_table(sim):
    result = aifc.run_benchmark(base_url=sim.url, num_prompts=20, request_rate=40, max_concurrency=1,
                                random_input_len=8, random_output_len=4, probe_request_rate=20)
    assert result.document["probe_completed"] >= 1
    table = result.table()
    assert "Probe Requests" in table
    completed = result.document["probe_completed"]
    assert any(line.split() == ["Probe", "requests", "completed:", str(completed)] for line in table.splitlines())
    plain = aifc.run_benchmark(base_url=sim.url, num_prompts=2, random_input_len=8, random_output_len=2)
    assert "Probe Requests" not in plain.table()


def test_speculative_decoding_reaches_the_document_and_the_table():
    result = aifc.run_benchmark(num_prompts=10, random_input_len=8, random_output_len=20, num_warmups=2,
                                sim_itl_ms=1, sim_num_speculative_tokens=2, sim_spec_acceptance_rate=0.5)
    doc = result.document
    assert doc["spec_decode_num_drafts"] > 0
    assert doc["spec_decode_draft_tokens"] == 2 * doc["spec_decode_num_drafts"]
    assert len(doc["spec_decode_per_position_acceptance_rates"]) == 2
    assert 0 <= doc["spec_decode_acceptance_rate"] <= 100
    assert "Speculative Decoding" in result.table()
    with aifc.Simulator(num_speculative_tokens=3) as s:  # the simulator's own setting, from Python
        with urllib.request.urlopen(s.url + "/metrics", timeout=30) as answer:
            text = answer.read().decode()
        assert 'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="aifc-sim",' \
            'position="2"} 0.0' in text
    plain = aifc.run_benchmark(num_prompts=2, random_input_len=8, random_output_len=2, sim_itl_ms=1)
    assert "spec_decode_num_drafts" not in plain.document
    assert "Speculative Decoding" not in plain.table()


def test_a_run_draws_its_timeline(sim):
    run = aifc.BenchRun(base_url=sim.url, num_prompts=12, request_rate=400, random_output_len=5)
    run.run()
    page = run.timeline_html("10,30")
    assert page.count("<g><title>request ") == 12
    assert "ITL below 10 ms" in page
    with pytest.raises(aifc.InvalidArgument, match="two numbers"):
        run.timeline_html("10")
    stats = run.dataset_stats_html()
    assert stats.count('id="prompt-tokens-figures">12 requests: ') == 1
    assert 'id="output-tokens-figures">12 requests: mean 5.0, min 5' in stats


def test_run_benchmark_starts_the_simulator_by_itself():
    result = aifc.run_benchmark(num_prompts=20, random_input_len=8, random_output_len=4, sim_ttft_ms=15,
                                sim_itl_ms=1)
    assert result.summary["completed"] == 20
    assert result.summary["mean_ttft_ms"] >= 15  # the simulator's delay is a floor


def test_run_benchmark_errors():
    with pytest.raises(aifc.InvalidArgument, match="num_prompts"):
        aifc.run_benchmark(num_prompts=0)
    with pytest.raises(TypeError, match="num_prompt"):
        aifc.run_benchmark(num_prompt=10)
    with pytest.raises(aifc.AifcError, match="cannot reach"):
        aifc.run_benchmark(base_url="http://127.0.0.1:1", num_prompts=2)


def test_run_benchmark_refuses_values_out_of_range_by_name():
    with pytest.raises(aifc.InvalidArgument, match="request_rate"):
        aifc.run_benchmark(request_rate=float("nan"), num_prompts=2)
    with pytest.raises(aifc.InvalidArgument, match="random_input_len"):
        aifc.run_benchmark(random_input_len=2**62, num_prompts=2)  # once built forever
    with pytest.raises(aifc.InvalidArgument, match="request_timeout"):
        aifc.run_benchmark(request_timeout=1e10, num_prompts=2)


def test_run_benchmark_has_a_real_signature():
    import inspect
    params = inspect.signature(aifc.run_benchmark).parameters
    for name in ("base_url", "num_prompts", "request_rate", "max_concurrency", "goodput", "sim_tokenizer",
                 "ignore_eos", "observers"):
        assert name in params, name
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert params["ignore_eos"].default is None  # None: the core's default
    assert "request_rate: requests per second" in aifc.run_benchmark.__doc__


def test_benchmark_from_a_typed_spec():
    spec = aifc.default_spec()
    assert spec["load"]["request_rate"] in ("inf", float("inf"))
    assert spec["simulator"] is None
    spec["simulator"] = aifc.SimulatorConfig(ttft_ms=2, itl_ms=1, tokenizer="llama_cpp", chars_per_token=3).to_dict()
    spec["dataset"].update(num_prompts=12, random_input_len=20, random_output_len=3)
    spec["load"].update(num_requests=12, max_concurrency=3)
    seen = []
    bench = aifc.Benchmark(spec, observers=[seen.append])
    assert bench.spec["client"]["model"] == "aifc-sim"
    assert bench.warnings == []
    result = bench.run()
    assert result.summary["completed"] == 12
    assert result.records["input_tokens"] == [20] * 12  # fitted through llama.cpp's /tokenize shape
    assert len(seen) == 12
    assert result.document["aifc_spec"]["load"]["num_requests"] == 12


def test_benchmark_spec_errors_name_the_field():
    spec = aifc.default_spec()
    spec["load"]["request_rate"] = -2
    with pytest.raises(aifc.InvalidArgument, match="load: request_rate"):
        aifc.Benchmark(spec)
    with pytest.raises(aifc.InvalidArgument, match="unknown key 'laod'"):
        aifc.Benchmark({"laod": {}})
    with pytest.raises(TypeError):
        aifc.Benchmark("num_prompts=3")


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aifc", *args], capture_output=True, text=True, timeout=120, **kw)


def test_python_dash_m_aifc_is_the_cli(tmp_path):
    p = run_cli("bench", "--sim", "--num-prompts", "20", "--random-input-len", "8", "--random-output-len", "4",
                "--save-result", "--result-dir", str(tmp_path), "--result-filename", "r.json", "--disable-tqdm")
    assert p.returncode == 0, p.stderr
    assert "Serving Benchmark Result" in p.stdout
    assert json.load(open(tmp_path / "r.json"))["completed"] == 20
    bad = run_cli("bench", "--request-rat", "3")
    assert bad.returncode == 2 and "unknown flag" in bad.stderr


def test_ctrl_c_in_the_cli_writes_the_partial_result(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "aifc", "bench", "--num-prompts", "50", "--duration", "60",
                             "--request-rate", "50", "--sim-itl-ms", "20", "--random-output-len", "10",
                             "--result-dir", str(tmp_path), "--disable-tqdm"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    doc = json.load(open(files[0]))
    assert doc["interrupted"] is True and doc["completed"] > 10


def test_ctrl_c_during_the_set_up_stops_it(tmp_path, python_handles_ctrl_c):
    import _thread
    import threading

    # Counting a million prompts with the server's tokenizer is a million round trips: minutes.
    path = tmp_path / "many.jsonl"
    with open(path, "w") as f:
        for i in range(1_000_000):
            f.write(f'"prompt number {i} for the tokenizer"\n')
    with aifc.Simulator() as sim:
        threading.Timer(1.0, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt) as info:
            aifc.run_benchmark(base_url=sim.url, dataset_name="jsonl", dataset_path=str(path),
                               num_prompts=1_000_000, server_tokenizer=True)
        # Stopped in the set-up: nothing was measured, and it did not wait the counting out (the
        # bound is generous: the stop takes one round trip; the whole count takes minutes).
        assert not isinstance(info.value, aifc.Interrupted)
        assert time.monotonic() - t0 < 30
        assert sim.stats()["requests"] == 0


def test_the_first_errors_say_why_requests_failed():
    r = aifc.run_benchmark(sim_error_rate=1.0, sim_error_status=503, num_prompts=12, random_output_len=4)
    assert r.summary["failed"] == 12
    assert len(r.first_errors) == 10
    assert all(e.startswith("http_status: HTTP 503") for e in r.first_errors)
    assert aifc.run_benchmark(sim=True, num_prompts=3, random_output_len=2).first_errors == []
