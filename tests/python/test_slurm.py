import os
import pathlib

import pytest

import aifc


def cluster():
    if "AIFC_CLUSTER_STATE" not in os.environ:
        if os.environ.get("AIFC_REQUIRE_CLUSTER"):
            pytest.fail("AIFC_REQUIRE_CLUSTER is set but the cluster environment is not")
        pytest.skip("no test cluster (source tests/cluster/start.sh's env.sh)")
    return os.environ


def test_batch_script_quotes_everything():
    script = aifc.render_batch_script(aifc.JobSpec(command=["aifc", "bench", "--metadata", "x=$(id)"],
                                                   name="my run", nodes=2, gpus_per_node=1,
                                                   environment={"TOKEN": "secret"},
                                                   container=aifc.ContainerSpec(image="/img/aifc.sif")))
    assert "#SBATCH --job-name='my run'" in script
    assert "srun apptainer exec --nv /img/aifc.sif aifc bench --metadata 'x=$(id)'" in script
    assert "secret" not in script
    with pytest.raises(aifc.InvalidArgument, match="partition"):
        aifc.render_batch_script(aifc.JobSpec(command=["true"], partition="a\nb"))
    with pytest.raises(aifc.InvalidArgument, match="backend"):
        aifc.SlurmDispatcher("carrier-pigeon")


@pytest.mark.parametrize("backend", ["cli", "rest", "ssh"])
def test_dispatch_a_two_node_job_through_every_backend(backend):
    env = cluster()
    workdir = env["AIFC_CLUSTER_WORKDIR"]
    if backend == "cli":
        d = aifc.SlurmDispatcher.cli()
    elif backend == "rest":
        d = aifc.SlurmDispatcher.rest(url=env["AIFC_SLURMRESTD_URL"], user_name=env["AIFC_CLUSTER_USER"],
                                      api_ver=env["AIFC_SLURMRESTD_API_VERSION"], jwt=env["AIFC_SLURMRESTD_TOKEN"])
    else:
        d = aifc.SlurmDispatcher.ssh(host="127.0.0.1", port=int(env["AIFC_CLUSTER_SSH_PORT"]),
                                     user=env["AIFC_CLUSTER_USER"], key_path=env["AIFC_CLUSTER_SSH_KEY"],
                                     known_hosts_path=env["AIFC_CLUSTER_SSH_KNOWN_HOSTS"], remote_base_path=workdir)
    events = []
    d.on_state_change(events.append)
    job = d.submit(aifc.JobSpec(command=["bash", "-c", "echo $SLURM_PROCID $SLURMD_NODENAME $GREETING"],
                                name=f"py-{backend}", partition=env["AIFC_CLUSTER_PARTITION"], nodes=2,
                                ntasks_per_node=1, working_directory=workdir, output=f"{workdir}/py-{backend}-%j.out",
                                environment={"GREETING": "hi"}, time_limit_min=5))
    info = d.wait(job, timeout_s=60)
    assert info["state"] == "COMPLETED" and info["terminal"]
    out = pathlib.Path(f"{workdir}/py-{backend}-{job}.out").read_text()
    assert "0 n" in out and "1 n" in out and out.count(" hi") == 2
    assert events[0]["info"]["state"] == "PENDING" and events[-1]["info"]["state"] == "COMPLETED"
