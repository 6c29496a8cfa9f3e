"""aifc.ServiceClient against a real `aifc service` process (python -m aifc service)."""
import os
import socket
import subprocess
import sys
import time

import pytest

import aifc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ServiceProcess:
    def __init__(self, args, token):
        self.port = _free_port()
        env = dict(os.environ, AIFC_API_TOKEN=token)
        self.proc = subprocess.Popen([sys.executable, "-m", "aifc", "service", *args, "--port", str(self.port)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        client = aifc.ServiceClient(self.url, token)
        for _ in range(200):
            try:
                client.health()
                return
            except aifc.ServiceError:
                if self.proc.poll() is not None:
                    raise RuntimeError("aifc service exited: " + self.proc.stdout.read())
                time.sleep(0.05)
        raise RuntimeError("aifc service did not come up")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def offline_service(tmp_path):
    """A service whose slurmrestd cannot be reached: every job is refused."""
    conf = tmp_path / "slurmrest.conf"
    conf.write_text("url=http://127.0.0.1:9\nuser_name=nobody\njwt=not-a-token\n")
    svc = _ServiceProcess(["http://127.0.0.1:9", "--state-dir", str(tmp_path / "state"),
                           "--slurm-backend", "rest", "--slurm-config", str(conf)], "py-token")
    yield svc
    svc.stop()


def test_service_client_errors_and_a_refused_job(offline_service):
    svc = aifc.ServiceClient(offline_service.url, "py-token")
    assert "py-token" not in repr(svc)
    assert svc.health()["status"] == "ok"
    with pytest.raises(aifc.ServiceError) as info:
        aifc.ServiceClient(offline_service.url, "wrong").groups()
    assert info.value.status == 401
    with pytest.raises(aifc.ServiceError, match="num_clients") as info:
        svc.create_group("g", num_clients="two")
    assert info.value.status == 400
    group = svc.create_group("g", num_clients=2, num_prompts=10)
    assert group["state"] == "failed"
    assert "slurmrestd" in group["reason"]
    assert [g["id"] for g in svc.groups()] == ["g"]
    with pytest.raises(aifc.ServiceError, match="failed"):
        svc.wait("g", "ready", timeout_s=5)
    with pytest.raises(aifc.ServiceError) as info:
        svc.result("g")
    assert info.value.status == 409
    assert 'aifc_service_groups{state="failed"} 1' in svc.metrics()
    # The event stream of a group that has ended replays its history and ends.
    types = [e["type"] for e in svc.events("g")]
    assert "state" in types


def _cluster_required():
    if os.environ.get("AIFC_CLUSTER_STATE"):
        return
    if os.environ.get("AIFC_REQUIRE_CLUSTER"):
        pytest.fail("AIFC_REQUIRE_CLUSTER is set but no cluster environment is (source env.sh)")
    pytest.skip("needs the Slurm test cluster (tests/cluster/start.sh)")


def test_a_notebook_runs_a_distributed_group_and_gets_one_result(tmp_path):
    _cluster_required()
    with aifc.Simulator(ttft_ms=5, itl_ms=2) as sim:
        svc_proc = _ServiceProcess(
            [sim.url, "--state-dir", str(tmp_path / "state"), "--job-dir", os.environ["AIFC_CLUSTER_WORKDIR"],
             "--slurm-backend", "cli", "--agent-command", sys.executable, "-m", "aifc", "agent"], "nb-token")
        try:
            svc = aifc.ServiceClient(svc_proc.url, "nb-token")
            gid = f"py-{os.getpid()}"
            group = svc.create_group(gid, num_clients=2, nodes=2, time_limit=5,
                                     partition=os.environ["AIFC_CLUSTER_PARTITION"], num_prompts=60,
                                     request_rate=60, random_input_len=8, random_output_len=4)
            assert group["state"] == "submitted", group
            svc.wait(gid, "ready", timeout_s=180)
            assert svc.run(gid)["state"] == "running"
            seen = []
            for event in svc.events(gid):
                seen.append(event)
            assert seen[-1]["type"] in ("state", "result")
            assert svc.group(gid)["state"] == "finished"
            assert any(e["type"] == "state" and e["state"] == "finished" for e in seen)
            result = svc.result(gid)
            assert isinstance(result, aifc.Result)
            assert result.summary["completed"] == 60
            assert result.summary["failed"] == 0
            assert result.document["distributed"]["ranks"] == [0, 1]
            assert len(result) == 60
            assert "Successful requests:" in result.table()
        finally:
            svc_proc.stop()
