"""Typed configurations. Field names and meanings are those of the C++ structs (and so of the
JSON the C++ core reads); every value is validated by the core when it is used. The defaults
are the core's own (read from it at import), so Python and C++ cannot drift apart."""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from . import _core

_DEFAULTS = _core.defaults()


def _default(section: str, name: str) -> Any:
    """The core's default of one field (a fresh copy for lists and dicts)."""
    value = _DEFAULTS[section][name]
    if section == "load" and name == "request_rate" and value == "inf":
        return math.inf
    if section == "client" and name == "headers":
        return dict(value)  # the core's list of pairs; Python uses a dict
    return value


def _d(section: str, name: str):
    """A dataclass field whose default is the core's."""
    value = _default(section, name)
    if isinstance(value, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(value))
    return field(default=value)


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
class SamplingParams(_Config):
    """Sampling parameters, as `vllm bench serve`'s flags: each is sent only when set (not None),
    so that the server's default applies otherwise."""

    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    frequency_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    repetition_penalty: Optional[float] = None
    logprobs: Optional[int] = None


@dataclass
class ClientConfig(_Config):
    """How to reach an OpenAI-compatible server and what to ask of it."""

    base_url: str = _d("client", "base_url")
    endpoint: str = _d("client", "endpoint")
    model: str = _d("client", "model")
    served_model_name: str = _d("client", "served_model_name")
    # LoRA adapters: each request asks for one of them ("random" or "round-robin").
    lora_modules: List[str] = _d("client", "lora_modules")
    lora_assignment: str = _d("client", "lora_assignment")
    api_key: str = field(default="", repr=False)  # never in the core's JSON, nor in repr()
    headers: Dict[str, str] = _d("client", "headers")
    extra_body: Dict[str, Any] = _d("client", "extra_body")
    # chat endpoints: the server renders the chat template with these (vLLM renders on the client)
    chat_template_kwargs: Dict[str, Any] = _d("client", "chat_template_kwargs")
    stream: bool = _d("client", "stream")
    ignore_eos: bool = _d("client", "ignore_eos")
    sampling: SamplingParams = field(default_factory=SamplingParams)
    # None: "bench-<8 hex>-" chosen per run; "": no x-request-id header.
    request_id_prefix: Optional[str] = None
    capture_text: bool = _d("client", "capture_text")
    ca_cert_path: str = _d("client", "ca_cert_path")
    verify_tls: bool = _d("client", "verify_tls")
    connect_timeout_s: float = _d("client", "connect_timeout_s")
    read_timeout_s: float = _d("client", "read_timeout_s")
    first_token_timeout_s: float = _d("client", "first_token_timeout_s")
    request_timeout_s: float = _d("client", "request_timeout_s")

    def __post_init__(self):
        if isinstance(self.sampling, dict):
            self.sampling = SamplingParams.from_dict(self.sampling)

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        d["headers"] = [[k, v] for k, v in self.headers.items()]
        d["sampling"] = {k: v for k, v in d["sampling"].items() if v is not None}
        return d


@dataclass
class DatasetConfig(_Config):
    """Which prompts to send (names as `vllm bench serve`'s flags)."""

    dataset_name: str = _d("dataset", "dataset_name")
    dataset_path: str = _d("dataset", "dataset_path")
    num_prompts: int = _d("dataset", "num_prompts")
    random_input_len: int = _d("dataset", "random_input_len")
    random_output_len: int = _d("dataset", "random_output_len")
    random_range_ratio: float = _d("dataset", "random_range_ratio")
    # None: the output lengths use random_range_ratio too
    random_output_range_ratio: Optional[float] = None
    random_prefix_len: int = _d("dataset", "random_prefix_len")
    sharegpt_output_len: int = _d("dataset", "sharegpt_output_len")
    # jsonl (vLLM's custom): None: a line's own length, else 256; 0: no limit
    custom_output_len: Optional[int] = None
    prefix_repetition_prefix_len: int = _d("dataset", "prefix_repetition_prefix_len")
    prefix_repetition_suffix_len: int = _d("dataset", "prefix_repetition_suffix_len")
    prefix_repetition_num_prefixes: int = _d("dataset", "prefix_repetition_num_prefixes")
    prefix_repetition_output_len: int = _d("dataset", "prefix_repetition_output_len")
    timed_trace_chunk_hash_size: int = _d("dataset", "timed_trace_chunk_hash_size")
    timed_trace_sec_multiplier: float = _d("dataset", "timed_trace_sec_multiplier")
    timed_trace_label_timestamp: str = _d("dataset", "timed_trace_label_timestamp")
    timed_trace_label_input_length: str = _d("dataset", "timed_trace_label_input_length")
    timed_trace_label_output_length: str = _d("dataset", "timed_trace_label_output_length")
    timed_trace_label_hash_ids: str = _d("dataset", "timed_trace_label_hash_ids")
    disable_shuffle: bool = _d("dataset", "disable_shuffle")
    no_oversample: bool = _d("dataset", "no_oversample")
    seed: int = _d("dataset", "seed")


@dataclass
class LoadConfig(_Config):
    """When requests are sent. `request_rate=math.inf` sends everything at once."""

    request_rate: float = _d("load", "request_rate")
    burstiness: float = _d("load", "burstiness")
    max_concurrency: int = _d("load", "max_concurrency")
    num_requests: int = _d("load", "num_requests")
    duration_s: float = _d("load", "duration_s")
    num_warmups: int = _d("load", "num_warmups")
    ramp_up_strategy: str = _d("load", "ramp_up_strategy")
    ramp_up_start_rps: int = _d("load", "ramp_up_start_rps")
    ramp_up_end_rps: int = _d("load", "ramp_up_end_rps")
    self_timed: bool = _d("load", "self_timed")
    seed: int = _d("load", "seed")

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        if isinstance(self.request_rate, (int, float)) and math.isinf(self.request_rate):
            d["request_rate"] = "inf"
        return d


@dataclass
class SummaryOptions(_Config):
    """What the summary reports: --percentile-metrics, --metric-percentiles, --goodput."""

    percentile_metrics: List[str] = _d("summary", "percentile_metrics")
    metric_percentiles: List[float] = _d("summary", "metric_percentiles")
    goodput: Optional[Union[str, Dict[str, float]]] = None

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        if d["goodput"] is None:
            d["goodput"] = {}
        return d


@dataclass
class SimulatorConfig(_Config):
    """The built-in vLLM-compatible simulator. Delays: ms, "uniform:LO:HI", "exp:MEAN", "normal:MEAN:SD"."""

    host: str = _d("simulator", "host")
    port: int = 0  # unlike the `aifc sim` program's 8000: a notebook's simulator takes any free port
    model: str = _d("simulator", "model")
    lora_modules: List[str] = _d("simulator", "lora_modules")  # served beside the model
    api_key: str = field(default="", repr=False)  # never in the core's JSON, nor in repr()
    ttft_ms: Union[float, str] = _d("simulator", "ttft_ms")
    itl_ms: Union[float, str] = _d("simulator", "itl_ms")
    default_max_tokens: int = _d("simulator", "default_max_tokens")
    tokens_per_chunk: int = _d("simulator", "tokens_per_chunk")
    reasoning_tokens: int = _d("simulator", "reasoning_tokens")
    eos_probability: float = _d("simulator", "eos_probability")
    max_model_len: int = _d("simulator", "max_model_len")
    num_speculative_tokens: int = _d("simulator", "num_speculative_tokens")
    spec_acceptance_rate: float = _d("simulator", "spec_acceptance_rate")
    error_rate: float = _d("simulator", "error_rate")
    error_status: int = _d("simulator", "error_status")
    disconnect_rate: float = _d("simulator", "disconnect_rate")
    stall_rate: float = _d("simulator", "stall_rate")
    stall_ms: int = _d("simulator", "stall_ms")
    stream_error_rate: float = _d("simulator", "stream_error_rate")
    malformed_rate: float = _d("simulator", "malformed_rate")
    stream_error_style: str = _d("simulator", "stream_error_style")
    empty_response_rate: float = _d("simulator", "empty_response_rate")
    length_field: str = _d("simulator", "length_field")
    tokenizer: str = _d("simulator", "tokenizer")
    chars_per_token: int = _d("simulator", "chars_per_token")
    close_after_response_ms: int = _d("simulator", "close_after_response_ms")
    max_requests_per_connection: int = _d("simulator", "max_requests_per_connection")
    ssl_certfile: str = _d("simulator", "ssl_certfile")
    ssl_keyfile: str = _d("simulator", "ssl_keyfile")
    fault_after_tokens: int = _d("simulator", "fault_after_tokens")
    seed: int = _d("simulator", "seed")
    threads: int = _d("simulator", "threads")

    def _core(self) -> Dict[str, Any]:
        d = self.to_dict()
        for key in ("ttft_ms", "itl_ms"):
            d[key] = str(d[key])
        return d


@dataclass
class ContainerSpec(_Config):
    """Run the job's command inside Apptainer (`apptainer exec [--nv] --bind ... image cmd`)."""

    image: str = _d("container", "image")
    binds: List[str] = _d("container", "binds")
    gpu: Optional[bool] = None
    extra_args: List[str] = _d("container", "extra_args")
    apptainer: str = _d("container", "apptainer")


@dataclass
class JobSpec(_Config):
    """A client job in Slurm's vocabulary; every value is quoted in the generated script."""

    command: List[str] = _d("job", "command")
    name: str = _d("job", "name")
    partition: str = _d("job", "partition")
    account: str = _d("job", "account")
    qos: str = _d("job", "qos")
    nodes: int = _d("job", "nodes")
    ntasks: int = _d("job", "ntasks")
    ntasks_per_node: int = _d("job", "ntasks_per_node")
    cpus_per_task: int = _d("job", "cpus_per_task")
    gpus_per_node: int = _d("job", "gpus_per_node")
    memory: str = _d("job", "memory")
    time_limit_min: int = _d("job", "time_limit_min")
    array: str = _d("job", "array")
    working_directory: str = _d("job", "working_directory")
    output: str = _d("job", "output")
    error: str = _d("job", "error")
    environment: Dict[str, str] = _d("job", "environment")
    extra_directives: List[str] = _d("job", "extra_directives")
    use_srun: bool = _d("job", "use_srun")
    container: Optional[ContainerSpec] = None
