import math
import signal
import threading
import time
import warnings

import pytest

import aifc


def dataset(n=20, out=4):
    return aifc.DatasetConfig(num_prompts=n, random_input_len=8, random_output_len=out)


class Recorder(aifc.Observer):
    def __init__(self):
        self.events = []
        self.threads = set()

    def on_run_started(self, info):
        self.events.append("started")
        self.threads.add(threading.get_ident())

    def on_request_finished(self, record):
        self.events.append(record["index"])
        self.threads.add(threading.get_ident())

    def on_progress(self, progress):
        self.events.append("progress")

    def on_run_finished(self, progress):
        self.events.append(("finished", progress["completed"]))


def test_group_run_with_observers_and_columns(sim):
    recorder = Recorder()
    calls = []
    group = aifc.ClientGroup(aifc.ClientConfig(base_url=sim.url), aifc.LoadConfig(num_requests=30, request_rate=200),
                             dataset=dataset(), observers=[recorder, calls.append], progress_interval_s=0.05)
    result = group.run()
    assert result.summary["completed"] == 30
    assert len(result) == 30
    assert recorder.events[0] == "started"
    assert recorder.events[-1] == ("finished", 30)
    assert sorted(e for e in recorder.events if isinstance(e, int)) == list(range(30))
    assert len(calls) == 30 and calls[0]["ok"]
    assert len(recorder.threads) == 1 and threading.get_ident() not in recorder.threads
    cols = result.records
    assert set(["index", "ttft_ms", "e2el_ms", "token_ns", "error", "lateness_ms"]) <= set(cols)
    assert all(len(v) == 30 for v in cols.values())
    assert all(not math.isnan(x) for x in cols["ttft_ms"])


def test_a_failing_observer_is_reported_and_the_run_goes_on(sim):
    def broken(record):
        raise ValueError("observer bug")

    group = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 10}, dataset=dataset(10), observers=[broken])
    with pytest.warns(RuntimeWarning, match="observer bug"):
        result = group.run()
    assert result.summary["completed"] == 10
    assert result.observer_errors == 10


def test_background_run_progress_and_stop_keep_the_partial_result():
    with aifc.Simulator(ttft_ms=5, itl_ms=20) as s:
        group = aifc.ClientGroup(aifc.ClientConfig(base_url=s.url), aifc.LoadConfig(num_requests=10000, request_rate=50),
                                 dataset=dataset(50, 10))
        group.start()
        time.sleep(0.8)
        p = group.progress()
        assert p["total"] == 10000 and p["in_flight"] > 0
        assert not group.done
        group.stop()
        assert group.wait(10)
        result = group.result()
        assert result.interrupted
        assert result.summary["completed"] > 10
        assert result.summary["failed"] == 0


def test_ctrl_c_stops_the_run_and_keeps_the_partial_result(python_handles_ctrl_c):
    import _thread

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with aifc.Simulator(ttft_ms=5, itl_ms=20) as s:
        group = aifc.ClientGroup({"base_url": s.url}, {"num_requests": 10000, "request_rate": 50}, dataset=dataset(50, 10))

        # Ctrl-C once the run is under way (not at a fixed time, which a loaded machine may
        # reach before run() waits); the run would take 200 s, so a lost interrupt fails fast.
        def interrupt_when_running():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if group.progress()["completed"] > 10:
                        break
                except aifc.AifcError:
                    pass  # not started yet
                time.sleep(0.05)
            _thread.interrupt_main()
            for _ in range(600):
                if group.done:
                    return
                time.sleep(0.05)
            group.stop()

        threading.Thread(target=interrupt_when_running, daemon=True).start()
        with pytest.raises(aifc.Interrupted) as info:
            group.run()
        assert isinstance(info.value, KeyboardInterrupt)
        partial = info.value.result
        assert partial.interrupted
        assert partial.summary["completed"] > 10


def test_shards_split_one_schedule(sim):
    seen = []
    for rank in range(3):
        r = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 30, "request_rate": 500}, dataset=dataset(),
                             shard=(rank, 3)).run()
        assert all(i % 3 == rank for i in r.records["index"])
        seen += r.records["index"]
    assert sorted(seen) == list(range(30))


def test_save_and_load_result(sim, tmp_path):
    result = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 8}, dataset=dataset(8)).run()
    path = result.save(tmp_path / "r.json")
    back = aifc.load_result(path)
    assert back.summary["completed"] == 8
    assert back.records["index"] == result.records["index"]


def test_to_pandas(sim):
    pd = pytest.importorskip("pandas")
    df = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 5}, dataset=dataset(5)).run().to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 5


def test_group_argument_errors(sim):
    with pytest.raises(TypeError):
        aifc.ClientGroup({"base_url": sim.url, "bogus": 1})
    with pytest.raises(ValueError, match="transport"):
        aifc.ClientGroup({"base_url": sim.url}, transport="carrier-pigeon", dataset=dataset(2))
    with pytest.raises(aifc.InvalidArgument, match="burstiness"):
        aifc.ClientGroup({"base_url": sim.url}, {"burstiness": 0}, dataset=dataset(2))
    with pytest.raises(TypeError):
        aifc.ClientGroup({"base_url": sim.url}, {"num_requests": "ten"}, dataset=dataset(2))
    with pytest.raises(TypeError, match="prompts or dataset"):
        aifc.ClientGroup({"base_url": sim.url}, prompts=["a"], dataset=dataset(2))


def test_bytes_that_are_not_utf8_never_cost_the_result():
    # A server whose error body is not UTF-8: every record must still reach Python (the bytes
    # are replaced), from a group run and from a single send.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    body = b"\xff\xfe not utf-8 \xc3"

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}"
        result = aifc.ClientGroup({"base_url": url, "model": "m"}, {"num_requests": 3},
                                  prompts=[{"text": "hi", "input_tokens": 1, "output_tokens": 2}]).run()
        assert result.summary["failed"] == 3
        assert all("not utf-8" in m for m in result.records["error_message"])
        record = aifc.VLLMClient(base_url=url, model="m").send("hi", 2)
        assert record["error"] == "http_status" and "not utf-8" in record["error_message"]
    finally:
        listener.close()
