"""aifc: benchmark LLM-serving endpoints (vLLM and any OpenAI-compatible server) from Python,
driving the same C++ core as the `aifc` command-line program.

    import aifc
    with aifc.Simulator(ttft_ms=20, itl_ms=5) as sim:
        result = aifc.run_benchmark(base_url=sim.url, num_prompts=100, request_rate=50)
    result.summary["mean_ttft_ms"], result.to_pandas()
"""
from ._core import AifcError, InvalidArgument, __version__
from ._config import (ClientConfig, ContainerSpec, DatasetConfig, JobSpec, LoadConfig, SamplingParams,
                      SimulatorConfig, SummaryOptions)
from . import plot
from .service import ServiceClient, ServiceError
from ._api import (Benchmark, BenchRun, ClientGroup, Interrupted, Observer, Result, Simulator, SlurmDispatcher, VLLMClient,
                   benchmark_options, default_spec, load_dataset, load_result, render_batch_script, run_benchmark)

__all__ = [
    "AifcError", "InvalidArgument", "__version__",
    "ClientConfig", "ContainerSpec", "DatasetConfig", "JobSpec", "LoadConfig", "SamplingParams", "SimulatorConfig",
    "SummaryOptions",
    "Benchmark", "BenchRun", "ClientGroup", "Interrupted", "Observer", "Result", "Simulator", "SlurmDispatcher", "VLLMClient",
    "benchmark_options", "default_spec", "load_dataset", "load_result", "render_batch_script", "run_benchmark", "plot",
    "ServiceClient", "ServiceError",
]
