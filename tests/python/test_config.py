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
