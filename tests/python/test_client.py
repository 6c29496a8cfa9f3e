import threading
import time

import pytest

import aifc


def test_send_streams_and_times_every_token(sim):
    client = aifc.VLLMClient(base_url=sim.url, model="aifc-sim")
    rec = client.send("one two three", max_tokens=12)
    assert rec["ok"], rec["error_message"]
    assert rec["output_tokens"] == 12
    assert len(rec["token_ns"]) == 12
    assert rec["input_tokens"] == 3 and rec["input_tokens_exact"]
    # The simulator waits 10 ms before the first token, so nothing earlier can be right; how
    # close aifc comes to the setting is a figure for bench/ (a loaded machine adds delay).
    assert rec["ttft_ms"] >= 9.5
    gaps = [(b - a) / 1e6 for a, b in zip(rec["token_ns"], rec["token_ns"][1:])]
    assert all(g >= 0 for g in gaps)


def test_chat_reasoning_and_set_up_calls():
    with aifc.Simulator(reasoning_tokens=3, itl_ms=2) as s:
        client = aifc.VLLMClient(base_url=s.url, endpoint="/v1/chat/completions", capture_text=True)
        rec = client.send("hi there", max_tokens=6)
        assert rec["ok"]
        assert rec["first_reasoning_ns"] == rec["first_token_ns"]
        assert rec["first_answer_ns"] > rec["first_reasoning_ns"]
        assert rec["generated_text"]
        assert client.list_models() == ["aifc-sim"]
        assert client.health()
        assert client.count_tokens("a b c d") == 4


def test_failures_are_records_not_exceptions():
    rec = aifc.VLLMClient(base_url="http://127.0.0.1:1").send("x", 4)
    assert not rec["ok"]
    assert rec["error"] == "connect"
    with aifc.Simulator(error_rate=1.0, error_status=429) as s:
        rec = aifc.VLLMClient(base_url=s.url).send("x", 4)
        assert rec["error"] == "http_status" and rec["http_status"] == 429


def test_cancel_from_another_thread_releases_the_gil():
    with aifc.Simulator(ttft_ms=5000) as s:
        client = aifc.VLLMClient(base_url=s.url)
        ticks = []
        ticker = threading.Thread(target=lambda: [ticks.append(time.sleep(0.01)) for _ in range(10)])
        canceller = threading.Timer(0.3, client.cancel)
        ticker.start()
        canceller.start()
        t0 = time.monotonic()
        rec = client.send("x", 4)
        ticker.join()
        assert rec["error"] == "cancelled"
        assert time.monotonic() - t0 < 2
        assert len(ticks) == 10  # other Python threads ran while send() waited


def test_bad_arguments_raise_clear_python_errors():
    with pytest.raises(aifc.InvalidArgument, match="base_url") as info:
        aifc.VLLMClient(base_url="localhost:8000")
    assert isinstance(info.value, ValueError) and isinstance(info.value, aifc.AifcError)
    assert isinstance(info.value, RuntimeError)
    assert info.value.code == "invalid_argument"
    with pytest.raises(TypeError):
        aifc.VLLMClient(base_url="http://x", no_such_option=1)
    with pytest.raises(TypeError, match="prompt"):
        aifc.VLLMClient(base_url="http://x").send(42)
    with pytest.raises(TypeError):
        aifc.VLLMClient(base_url="http://x", stream="yes")
    with pytest.raises(aifc.AifcError, match="cannot reach"):
        aifc.VLLMClient(base_url="http://127.0.0.1:1").list_models()


def test_https_end_to_end_with_the_ca_and_refused_without(tmp_path):
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    with aifc.Simulator(itl_ms=1, ssl_certfile=str(cert), ssl_keyfile=str(key)) as s:
        assert s.url.startswith("https://")
        rec = aifc.VLLMClient(base_url=s.url, ca_cert_path=str(cert)).send("a b c", 5)
        assert rec["ok"], rec["error_message"]
        assert len(rec["token_ns"]) == 5 and rec["input_tokens"] == 3
        result = aifc.run_benchmark(base_url=s.url, ca_cert=str(cert), num_prompts=20,
                                    max_concurrency=4, random_input_len=8, random_output_len=3)
        assert result.summary["completed"] == 20 and result.summary["total_output_tokens"] == 60
        refused = aifc.VLLMClient(base_url=s.url).send("a b c", 5)
        assert refused["error"] == "tls" and "certificate" in refused["error_message"]
    with pytest.raises(aifc.AifcError, match="ssl_keyfile"):
        aifc.Simulator(ssl_certfile=str(cert), ssl_keyfile=str(tmp_path / "missing.pem")).start()
