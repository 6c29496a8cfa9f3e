import math

import pytest

import aifc


def test_configs_round_trip_through_dicts():
    c = aifc.ClientConfig(base_url="http://h:1", headers={"X-A": "b"}, first_token_timeout_s=2.5)
    assert aifc.ClientConfig.from_dict(c.to_dict()) == c
    load = aifc.LoadConfig(request_rate=5, burstiness=0.5, max_concurrency=3)
    assert aifc.LoadConfig.from_dict(load.to_dict()) == load
    assert math.isinf(aifc.LoadConfig().request_rate)
    d = aifc.DatasetConfig.from_dict({"num_prompts": 3, "random_input_len": 4})
    assert d.num_prompts == 3
    with pytest.raises(TypeError, match="unknown field"):
        aifc.DatasetConfig.from_dict({"num_prompt": 3})


def test_load_dataset_is_deterministic():
    a = aifc.load_dataset(num_prompts=5, random_input_len=10, seed=3)
    b = aifc.load_dataset(aifc.DatasetConfig(num_prompts=5, random_input_len=10, seed=3))
    assert a == b
    assert len(a) == 5 and all(p["input_tokens"] == 10 for p in a)
    with pytest.raises(aifc.InvalidArgument, match="random_range_ratio"):
        aifc.load_dataset(random_range_ratio=2.0)


def test_version_is_one_for_cmake_and_python():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2]
    assert aifc.__version__ == (root / "VERSION").read_text().strip()


def test_defaults_come_from_the_core():
    core = aifc._core.defaults()
    for cls, section in ((aifc.ClientConfig, "client"), (aifc.DatasetConfig, "dataset"),
                         (aifc.LoadConfig, "load"), (aifc.SummaryOptions, "summary"),
                         (aifc.SimulatorConfig, "simulator"), (aifc.JobSpec, "job"),
                         (aifc.ContainerSpec, "container")):
        ours = cls().to_dict()
        for name, value in core[section].items():
            if name not in ours or (cls, name) in ((aifc.SimulatorConfig, "port"), (aifc.SummaryOptions, "goodput"),
                                                   (aifc.JobSpec, "container")):
                continue  # the documented exceptions (a notebook's simulator takes any free port)
            if (section, name) == ("load", "request_rate"):
                assert ours[name] == float("inf") and value == "inf"
            elif (section, name) == ("client", "headers"):
                assert ours[name] == dict(value)
            elif (section, name) == ("client", "sampling"):  # unset parameters are None here, absent there
                assert {k: v for k, v in ours[name].items() if v is not None} == value
            else:
                assert ours[name] == value, (section, name, ours[name], value)


def test_secrets_stay_out_of_repr():
    assert "sk-secret" not in repr(aifc.ClientConfig(api_key="sk-secret"))
    assert "sk-secret" not in repr(aifc.SimulatorConfig(api_key="sk-secret"))


def test_sampling_parameters_reach_the_core_typed_and_by_flag_name():
    config = aifc.ClientConfig.from_dict({"model": "m", "sampling": {"temperature": 0.0, "top_k": 5}})
    assert config.sampling == aifc.SamplingParams(temperature=0.0, top_k=5)
    assert config._core()["sampling"] == {"temperature": 0.0, "top_k": 5}  # unset ones are not sent
    with pytest.raises(aifc.InvalidArgument, match="top_p"):
        aifc.VLLMClient(config=aifc.ClientConfig(sampling=aifc.SamplingParams(top_p=2.0)))
    spec = aifc.BenchRun(sim=True, num_prompts=2, random_input_len=8, random_output_len=2, temperature=0.5,
                         logprobs=2, served_model_name="served", request_id_prefix="r-").spec
    assert spec["client"]["sampling"] == {"temperature": 0.5, "logprobs": 2}
    assert spec["client"]["served_model_name"] == "served"
    assert spec["client"]["request_id_prefix"] == "r-"
