import pytest

import aifc

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_plots_draw_from_results_and_files(sim, tmp_path):
    a = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 20, "request_rate": 100},
                         dataset=aifc.DatasetConfig(num_prompts=20, random_input_len=8, random_output_len=8)).run()
    b = aifc.ClientGroup({"base_url": sim.url}, {"num_requests": 20, "max_concurrency": 2},
                         dataset=aifc.DatasetConfig(num_prompts=20, random_input_len=8, random_output_len=8)).run()
    path = b.save(tmp_path / "b.json")
    axes = aifc.plot.latency_cdf({"paced": a, "closed loop": path})
    assert len(axes) == 3
    assert all(len(ax.lines) == 2 for ax in axes)
    ax = aifc.plot.throughput_over_time(a, bin_s=0.1)
    assert ax.patches  # token bars
    ax = aifc.plot.compare({"paced": a, "closed loop": b})
    assert len(ax.patches) >= 4
    ax.figure.savefig(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 1000
