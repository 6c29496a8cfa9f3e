"""Typed configurations. Field names and meanings are those of the C++ structs (and so of the
JSON the C++ core reads); every value is validated by the core when it is used."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union


class _Config:
    """to_dict / from_dict for the dataclasses below."""

    def to_dict(self) -> Dict[str, Any]:
        """The configuration as a plain dict (JSON-compatible)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]):
        """Builds the configuration from a dict; unknown keys raise TypeError."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def _core(self) -> Dict[str, Any]:
        return self.to_dict()


@dataclass
class ClientConfig(_Config):
    """How to reach an OpenAI-compatible server and what to ask of it."""

    base_url: str = "http://127.0.0.1:8000"
    endpoint: str = "/v1/completions"
    model: str = ""
    api_key: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    extra_body: Dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    ignore_eos: bool = False
    capture_text: bool = False
    ca_cert_path: str = ""
    verify_tls: bool = True
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    first_token_timeout_s: float = 0.0
    request_timeout_s: float = 21600.0

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        d["headers"] = [[k, v] for k, v in self.headers.items()]
        return d


@dataclass
class DatasetConfig(_Config):
    """Which prompts to send (names as `vllm bench serve`'s flags)."""

    dataset_name: str = "random"
    dataset_path: str = ""
    num_prompts: int = 1000
    random_input_len: int = 1024
    random_output_len: int = 128
    random_range_ratio: float = 0.0
    random_prefix_len: int = 0
    sharegpt_output_len: int = 0
    seed: int = 0


@dataclass
class LoadConfig(_Config):
    """When requests are sent. `request_rate=math.inf` sends everything at once."""

    request_rate: float = math.inf
    burstiness: float = 1.0
    max_concurrency: int = 0
    num_requests: int = 1000
    duration_s: float = 0.0
    num_warmups: int = 0
    ramp_up_strategy: str = "none"
    ramp_up_start_rps: float = 0.0
    ramp_up_end_rps: float = 0.0
    seed: int = 0

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        if isinstance(self.request_rate, (int, float)) and math.isinf(self.request_rate):
            d["request_rate"] = "inf"
        return d


@dataclass
class SummaryOptions(_Config):
    """What the summary reports: --percentile-metrics, --metric-percentiles, --goodput."""

    percentile_metrics: List[str] = field(default_factory=lambda: ["ttft", "tpot", "itl"])
    metric_percentiles: List[float] = field(default_factory=lambda: [99.0])
    goodput: Optional[Union[str, Dict[str, float]]] = None

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        if d["goodput"] is None:
            d["goodput"] = {}
        return d


@dataclass
class SimulatorConfig(_Config):
    """The built-in vLLM-compatible simulator. Delays: ms, "uniform:LO:HI", "exp:MEAN", "normal:MEAN:SD"."""

    host: str = "127.0.0.1"
    port: int = 0
    model: str = "aifc-sim"
    api_key: str = ""
    ttft_ms: Union[float, str] = 0
    itl_ms: Union[float, str] = 0
    default_max_tokens: int = 16
    tokens_per_chunk: int = 1
    reasoning_tokens: int = 0
    eos_probability: float = 0.0
    max_model_len: int = 1 << 20
    error_rate: float = 0.0
    error_status: int = 500
    disconnect_rate: float = 0.0
    stall_rate: float = 0.0
    stall_ms: int = 5000
    stream_error_rate: float = 0.0
    malformed_rate: float = 0.0
    stream_error_style: str = "data"
    empty_response_rate: float = 0.0
    length_field: str = "both"
    tokenizer: str = "vllm"
    chars_per_token: int = 0
    close_after_response_ms: int = -1
    max_requests_per_connection: int = 0
    fault_after_tokens: int = 2
    seed: int = 0
    threads: int = 1100

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        for key in ("ttft_ms", "itl_ms"):
            d[key] = str(d[key])
        return d


@dataclass
class ContainerSpec(_Config):
    """Run the job's command inside Apptainer (`apptainer exec [--nv] --bind ... image cmd`)."""

    image: str = ""
    binds: List[str] = field(default_factory=list)
    gpu: Optional[bool] = None
    extra_args: List[str] = field(default_factory=list)
    apptainer: str = "apptainer"


@dataclass
class JobSpec(_Config):
    """A client job in Slurm's vocabulary; every value is quoted in the generated script."""

    command: List[str] = field(default_factory=list)
    name: str = "aifc"
    partition: str = ""
    account: str = ""
    qos: str = ""
    nodes: int = 1
    ntasks: int = 0
    ntasks_per_node: int = 0
    cpus_per_task: int = 0
    gpus_per_node: int = 0
    memory: str = ""
    time_limit_min: int = 0
    array: str = ""
    working_directory: str = ""
    output: str = ""
    error: str = ""
    environment: Dict[str, str] = field(default_factory=dict)
    extra_directives: List[str] = field(default_factory=list)
    use_srun: bool = True
    container: Optional[ContainerSpec] = None
