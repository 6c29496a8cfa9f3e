"""The Python face of the aifc core: clients, groups, the simulator and results."""
from __future__ import annotations

import inspect
import json
import math
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _core
from ._config import ClientConfig, DatasetConfig, JobSpec, LoadConfig, SimulatorConfig, SummaryOptions


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a benchmark. `.result` holds everything measured until then."""

    def __init__(self, result: "Result"):
        super().__init__("benchmark interrupted; the partial result is in .result")
        self.result = result


class Observer:
    """Base class for live monitoring; override what you need. Methods are called on the run's
    observer thread with the GIL held, behind a bounded queue, so a slow observer never slows the
    run (when it falls far behind, request events are dropped and counted in the result's
    `observer_events_dropped`). An exception is reported in the result and does not stop the
    run. A plain callable works too: it is called with each finished request."""

    def on_run_started(self, info: Dict[str, Any]) -> None:
        """The run starts: `info` has `mono_ns`, `unix_ns` and `total` (0 if duration-limited)."""

    def on_request_finished(self, record: Dict[str, Any]) -> None:
        """A request finished (successfully or not); `record` has every timestamp."""

    def on_progress(self, progress: Dict[str, Any]) -> None:
        """Periodic snapshot: completed, failed, in_flight, throughput so far."""

    def on_run_finished(self, progress: Dict[str, Any]) -> None:
        """The run is over; the final snapshot."""


class Result:
    """A finished (or interrupted) benchmark."""

    def __init__(self, summary: Dict[str, Any], records: Dict[str, list], document: Optional[Dict[str, Any]] = None,
                 duration_s: float = 0.0, interrupted: bool = False, observer_errors: int = 0,
                 first_observer_error: str = "", observer_events_dropped: int = 0,
                 first_errors: Optional[List[str]] = None):
        self.summary = summary
        """The summary, with `vllm bench serve`'s result keys and aifc's own."""
        self.records = records
        """Per-request data as columns (`dict[str, list]`)."""
        self.document = document if document is not None else dict(summary)
        """What `save()` writes: the summary plus run metadata."""
        self.duration_s = duration_s
        self.interrupted = interrupted
        self.observer_errors = observer_errors
        self.first_observer_error = first_observer_error
        self.observer_events_dropped = observer_events_dropped
        """Request events that observers missed because they fell behind."""
        self.first_errors = list(first_errors or [])
        """The first failed requests' "kind: message" (at most 10): why they failed."""
        self._summary_options = SummaryOptions()

    @classmethod
    def _from_core(cls, core_result, document: Optional[Dict[str, Any]] = None) -> "Result":
        summary = core_result.summary
        if document is None:
            document = dict(summary)
            document["interrupted"] = core_result.interrupted
            document["aggregate"] = core_result.aggregate
        return cls(summary, core_result.records, document, core_result.duration_s, core_result.interrupted,
                   core_result.observer_errors, core_result.first_observer_error,
                   core_result.observer_events_dropped, core_result.first_errors)

    def __len__(self) -> int:
        return len(self.records.get("index", []))

    def __repr__(self) -> str:
        s = self.summary
        return (f"<aifc.Result completed={s.get('completed')} failed={s.get('failed')} "
                f"duration={s.get('duration', 0):.2f}s mean_ttft_ms={s.get('mean_ttft_ms', float('nan')):.2f}>")

    def table(self, summary_options: Optional[Union[SummaryOptions, Dict[str, Any]]] = None) -> str:
        """The summary table as `vllm bench serve` prints it."""
        options = _as(SummaryOptions, summary_options, "summary_options") if summary_options is not None \
            else self._summary_options
        summary = dict(self.summary)
        if self.document:  # the configured rate and concurrency, as `aifc bench` shows them
            for key in ("request_rate", "max_concurrency"):
                summary.setdefault(key, self.document.get(key))
            # vLLM's probe (--probe-request-rate) and speculative-decoding sections
            for key, value in self.document.items():
                if key.startswith(("probe_", "spec_decode_")):
                    summary.setdefault(key, value)
        return _core.format_summary_table(summary, options._core())

    def to_pandas(self):
        """The records as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Result.to_pandas() needs pandas: pip install pandas") from e
        return pd.DataFrame(self.records)

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes the result JSON (the summary, metadata and per-request records) to `path`."""
        doc = dict(self.document)
        doc.setdefault("records_columns", self.records)
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f, indent=2, default=_json_default)
        return path


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def load_result(path: Union[str, os.PathLike]) -> Result:
    """Reads a result file written by `Result.save()` or `aifc bench --save-result`."""
    with open(path) as f:
        return _result_from_document(json.load(f))


def _result_from_document(doc: Dict[str, Any]) -> Result:
    """A Result from a result document (a file's, or a merged one from the service)."""
    records = doc.get("records_columns")
    if records is None and "records" in doc:  # aifc bench --save-detailed
        rows = doc["records"]
        keys = sorted({k for r in rows for k in r})  # the record's own JSON fields, as written
        records = {k: [r.get(k) for r in rows] for k in keys}
        records["ok"] = [r.get("error") == "none" for r in rows]
        for name, start, end in (("ttft_ms", "send_ns", "first_token_ns"), ("e2el_ms", "send_ns", "end_ns"),
                                 ("lateness_ms", "scheduled_ns", "send_ns")):
            records[name] = [(r[end] - r[start]) / 1e6 if r.get(end, -1) >= 0 and r.get(start, -1) >= 0
                             else float("nan") for r in rows]
    summary = {k: v for k, v in doc.items() if k not in ("records", "records_columns")}
    return Result(summary, records or {}, doc, doc.get("duration", 0.0), doc.get("interrupted", False))


def _as(cls, value, name):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls.from_dict(value)
    raise TypeError(f"{name} must be a {cls.__name__} or a dict, not {type(value).__name__}")


class VLLMClient:
    """Sends one request at a time to an OpenAI-compatible server and times every chunk.

    `VLLMClient(base_url=..., model=..., endpoint=...)` or `VLLMClient(config=ClientConfig(...))`.
    """

    def __init__(self, config: Optional[ClientConfig] = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either config or keyword arguments, not both")
        self.config = _as(ClientConfig, config, "config") if config is not None else ClientConfig(**kwargs)
        self._core = _core.VLLMClient(self.config._core())

    def send(self, prompt: str, max_tokens: int = 0, *, input_tokens: int = 0,
             extra_body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sends one request (GIL released) and returns its record; a failure is a record with `error`."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if max_tokens < 0:
            raise ValueError("max_tokens must not be negative")
        return self._core.send(prompt, max_tokens, input_tokens, extra_body)

    def cancel(self) -> None:
        """Aborts the request in flight (from another thread) and refuses later ones until resume()."""
        self._core.cancel()

    def resume(self) -> None:
        self._core.resume()

    def list_models(self) -> List[str]:
        """GET /v1/models."""
        return self._core.list_models()

    def health(self) -> bool:
        """GET /health."""
        return self._core.health()

    def count_tokens(self, text: str) -> Optional[int]:
        """POST /tokenize; None when the server has no tokenizer endpoint."""
        return self._core.count_tokens(text)


def load_dataset(config: Optional[DatasetConfig] = None, **kwargs) -> List[Dict[str, Any]]:
    """Builds the prompts of a dataset (seeded, deterministic) as dicts."""
    cfg = _as(DatasetConfig, config, "config") if config is not None else DatasetConfig(**kwargs)
    return _core.load_dataset(cfg._core())


class _Run:
    """Shared behaviour of a group or bench run: blocking run(), or start()/progress()/stop()/wait()."""

    def __init__(self, core, observers: Iterable[Any]):
        self._core = core
        self._result: Optional[Result] = None
        for o in observers or ():
            self.add_observer(o)

    def add_observer(self, observer: Union[Observer, Callable[[Dict[str, Any]], Any]]) -> int:
        """Adds an Observer (or a callable taking each finished request's record) before the run;
        returns a handle for remove_observer()."""
        if not (isinstance(observer, Observer) or callable(observer) or hasattr(observer, "on_request_finished")):
            raise TypeError("an observer must be an aifc.Observer or a callable")
        return self._core.add_observer(observer)

    def remove_observer(self, handle: int) -> bool:
        """Detaches an observer, also during the run; False for an unknown handle."""
        return self._core.remove_observer(handle)

    def start(self) -> None:
        """Starts the run in the background and returns at once (for notebooks)."""
        self._core.start()

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Waits for the run (GIL released); True when it is done. Ctrl-C stops it: see run()."""
        try:
            return self._core.wait(timeout_s)
        except KeyboardInterrupt:
            raise Interrupted(self.result()) from None

    def stop(self) -> None:
        """Ends the run early; what was measured is kept. Safe to call twice."""
        self._core.stop()

    @property
    def done(self) -> bool:
        return self._core.done

    def progress(self) -> Dict[str, Any]:
        """A live snapshot: completed, failed, in_flight, total, throughput so far."""
        return self._core.progress()

    def run(self) -> Result:
        """Runs to the end and returns the result. Ctrl-C stops the run and raises
        aifc.Interrupted (a KeyboardInterrupt) whose `.result` holds the partial result."""
        self.start()
        self.wait()
        return self.result()

    def result(self) -> Result:
        """The result of a finished run."""
        if self._result is None:
            self._result = self._make_result()
            if self._result.observer_errors:
                warnings.warn(f"{self._result.observer_errors} observer call(s) failed; first: "
                              f"{self._result.first_observer_error}", RuntimeWarning, stacklevel=2)
        return self._result

    def _make_result(self) -> Result:
        return Result._from_core(self._core.result())


class ClientGroup(_Run):
    """Runs one workload with many concurrent clients, as the C++ ClientGroup does.

    Prompts come from `prompts` (dicts with `text`, `input_tokens`, `output_tokens`) or from
    `dataset` (a DatasetConfig); with neither, from the default DatasetConfig (`random`, 1000
    prompts, as `vllm bench serve` without flags). `shard=(rank, nranks)` sends that part of the
    global schedule.
    """

    def __init__(self, client: Union[ClientConfig, Dict[str, Any], None] = None,
                 load: Union[LoadConfig, Dict[str, Any], None] = None, *,
                 dataset: Union[DatasetConfig, Dict[str, Any], None] = None,
                 prompts: Optional[Sequence[Dict[str, Any]]] = None,
                 summary: Union[SummaryOptions, Dict[str, Any], None] = None,
                 shard: Tuple[int, int] = (0, 1), transport: str = "automatic", max_clients: int = 4096,
                 progress_interval_s: float = 1.0, keep_records: bool = True,
                 observers: Iterable[Any] = ()):
        client_cfg = _as(ClientConfig, client, "client")
        load_cfg = _as(LoadConfig, load, "load")
        if prompts is None:
            prompts = load_dataset(_as(DatasetConfig, dataset, "dataset"))
        elif dataset is not None:
            raise TypeError("pass prompts or dataset, not both")
        prompts = [{"text": p} if isinstance(p, str) else dict(p) for p in prompts]
        if len(shard) != 2:
            raise ValueError("shard must be (rank, nranks)")
        config = {
            "client": client_cfg._core(),
            "load": load_cfg._core(),
            "shard": {"rank": shard[0], "nranks": shard[1]},
            "summary": _as(SummaryOptions, summary, "summary")._core(),
            "transport": transport,
            "max_clients": max_clients,
            "progress_interval_s": progress_interval_s,
            "keep_records": keep_records,
        }
        if transport not in ("automatic", "event_loop", "threads"):
            raise ValueError(f"transport '{transport}' is not automatic, event_loop or threads")
        self._summary_options = _as(SummaryOptions, summary, "summary")
        super().__init__(_core.ClientGroup(config, prompts), observers)

    def _make_result(self) -> Result:
        result = Result._from_core(self._core.result())
        result._summary_options = self._summary_options
        return result


class BenchRun(_Run):
    """One `aifc bench` run with its keyword arguments (see run_benchmark)."""

    def __init__(self, observers: Iterable[Any] = (), **kwargs):
        options = {k: v for k, v in kwargs.items() if v is not None}
        self._init_core(_core.BenchRun.from_options(options), observers)

    def _init_core(self, core, observers: Iterable[Any]) -> None:
        summary = core.spec()["summary"]
        self._summary_options = SummaryOptions(percentile_metrics=list(summary["percentile_metrics"]),
                                               metric_percentiles=list(summary["metric_percentiles"]))
        super().__init__(core, observers)

    @property
    def spec(self) -> Dict[str, Any]:
        """The BenchmarkSpec as resolved (the simulator's address, the server's model)."""
        return self._core.spec()

    @property
    def warnings(self) -> List[str]:
        """What the set-up noticed, e.g. a server without a tokenizer."""
        return self._core.warnings()

    @property
    def options(self) -> Dict[str, Any]:
        """The resolved client, dataset and load configuration."""
        return self._core.options()

    def _make_result(self) -> Result:
        result = Result._from_core(self._core.result(), self._core.document())
        result._summary_options = self._summary_options
        return result

    def summary_table(self) -> str:
        """The table `aifc bench` prints."""
        return self._core.summary_table()

    def timeline_html(self, itl_thresholds_ms: str = "25,50") -> str:
        """The page `aifc bench --plot-timeline` writes, for the finished run: one line per
        request, its inter-token gaps green, orange or red by the two thresholds (ms). Save it
        to a file or show it in a notebook with IPython.display.HTML."""
        return self._core.timeline_html(itl_thresholds_ms)

    def dataset_stats_html(self) -> str:
        """The page `aifc bench --plot-dataset-stats` writes, for the finished run: histograms of
        the prompt tokens, the output tokens asked for and both together."""
        return self._core.dataset_stats_html()


def benchmark_options() -> List[Tuple[str, str, str]]:
    """Every named option of a benchmark as (name, kind, help): run_benchmark's keywords, the
    flags of `aifc bench` (dashes for underscores) and the keys of a service group's body."""
    return [tuple(o) for o in _core.benchmark_options()]


def default_spec() -> Dict[str, Any]:
    """A BenchmarkSpec with every field at the core's default, as a dict to change and pass to
    Benchmark: {"client": {...}, "dataset": {...}, "load": {...}, "shard": {...}, "summary": {...},
    "transport", "io_threads", "max_clients", "keep_records", "use_server_tokenizer", "simulator"}."""
    return _core.default_spec()


class Benchmark(BenchRun):
    """A benchmark from its typed spec (the JSON form that the C++ core, the CLI and the service
    share; start from default_spec()). Set "simulator" to a SimulatorConfig dict to run against
    the built-in simulator. Errors name the section and the field."""

    def __init__(self, spec: Dict[str, Any], observers: Iterable[Any] = ()):
        if not isinstance(spec, dict):
            raise TypeError("spec must be a dict (see aifc.default_spec())")
        self._init_core(_core.BenchRun.from_spec(spec), observers)


_OPTION_TYPES = {
    "boolean": Optional[bool],
    "integer": Optional[int],
    "number": Optional[Union[float, str]],
    "text": Optional[str],
    "list": Optional[Union[str, Sequence[Any]]],
    "key_values": Optional[Union[Dict[str, Any], Sequence[str], str]],
    "object": Optional[Dict[str, Any]],
}


def _bench_signature() -> Tuple[inspect.Signature, str]:
    """run_benchmark's parameters: the core's named benchmark options (the same table `aifc bench`
    makes its flags from), so the two cannot drift. None leaves the core's default."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("observers", kw, default=(), annotation=Iterable[Any])]
    lines = []
    for name, kind, help_text in _core.benchmark_options():
        params.append(inspect.Parameter(name, kw, default=None, annotation=_OPTION_TYPES[kind]))
        lines.append(f"    {name}: {help_text}")
    return inspect.Signature(params, return_annotation=Result), "\n".join(lines)


_BENCH_SIGNATURE, _BENCH_PARAMETERS = _bench_signature()


def run_benchmark(*, observers: Iterable[Any] = (), **kwargs) -> Result:
    bound = _BENCH_SIGNATURE.bind(observers=observers, **kwargs)  # an unknown keyword: TypeError
    flags = {k: v for k, v in bound.arguments.items() if k != "observers"}
    return BenchRun(observers=observers, **flags).run()


run_benchmark.__signature__ = _BENCH_SIGNATURE
run_benchmark.__doc__ = """Runs a benchmark as `aifc bench` would, its flags being keyword arguments:
`run_benchmark(base_url="http://host:8000", num_prompts=200, request_rate=20, max_concurrency=64,
goodput={"ttft": 500}, percentile_metrics=["ttft", "itl"])`. As in vllm bench serve, no
`base_url` (or host/port) means http://127.0.0.1:8000; `sim=True` (or any `sim_*` keyword, e.g.
`sim_ttft_ms=...`) runs the built-in simulator instead. A keyword that is not an
option is a TypeError naming it; a bad value is an aifc.InvalidArgument naming the keyword.
Ctrl-C raises aifc.Interrupted with the partial result. `observers`: callables or
aifc.Observer objects. Save the result with `Result.save(path)`. The keywords (None: the
core's default):

""" + _BENCH_PARAMETERS


class Simulator:
    """The built-in vLLM-compatible simulator, in this process. A context manager:

        with aifc.Simulator(ttft_ms=20, itl_ms=5) as sim:
            aifc.run_benchmark(base_url=sim.url, num_prompts=100)
    """

    def __init__(self, config: Optional[SimulatorConfig] = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either config or keyword arguments, not both")
        self.config = _as(SimulatorConfig, config, "config") if config is not None else SimulatorConfig(**kwargs)
        self._core = _core.Simulator(self.config._core())
        self._running = False

    def start(self) -> "Simulator":
        """Binds and serves; returns self."""
        if not self._running:
            self._core.start()
            self._running = True
        return self

    def stop(self) -> None:
        """Stops serving. Safe to call twice."""
        self._core.stop()
        self._running = False

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:40123."""
        return self._core.base_url

    def stats(self) -> Dict[str, Any]:
        """Request counts by outcome (received, ok, faulted, rejected, ...), tokens sent,
        requests per LoRA adapter (``requests_by_adapter``), and how late streamed chunks left
        against their due time (``send_lateness_us``: count, p50, p99, max)."""
        return self._core.stats()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SlurmDispatcher:
    """Submits client jobs to Slurm and follows them, through slurmrestd, the local sbatch, or
    sbatch on a login node over SSH:

        d = aifc.SlurmDispatcher.rest(url=..., user_name=..., jwt=...)   # or config_file=...
        d = aifc.SlurmDispatcher.cli()
        d = aifc.SlurmDispatcher.ssh(host=..., user=..., key_path=..., remote_base_path=...)
        job = d.submit(aifc.JobSpec(command=["aifc", "bench", ...], nodes=2))
        d.wait(job)["state"]   # "COMPLETED"
    """

    def __init__(self, backend: str, **config):
        self._core = _core.SlurmDispatcher(backend, config)

    @classmethod
    def rest(cls, **config) -> "SlurmDispatcher":
        """slurmrestd: url, user_name, api_ver (v0.0.38..v0.0.41), account, jwt, or config_file."""
        return cls("rest", **config)

    @classmethod
    def cli(cls, slurm_conf: str = "") -> "SlurmDispatcher":
        """The local sbatch, squeue, scontrol and scancel."""
        return cls("cli", slurm_conf=slurm_conf)

    @classmethod
    def ssh(cls, **config) -> "SlurmDispatcher":
        """sbatch over SSH: host, port, user, key_path, known_hosts_path, remote_base_path,
        accept_unknown_host (defaults from SSH_* variables and a .env file)."""
        return cls("ssh", **config)

    @property
    def backend(self) -> str:
        return self._core.backend

    def on_state_change(self, callback: Callable[[Dict[str, Any]], Any]) -> int:
        """Calls `callback(event)` on every state change seen by submit(), state() or wait(), in
        order, on the dispatcher's observer thread (polling never waits for it); returns a handle
        for remove_observer(). An exception in the callback is counted (observer_errors), never
        raised out of wait()."""
        return self._core.on_state_change(callback)

    def remove_observer(self, handle: int) -> bool:
        """Detaches a callback; False for an unknown handle."""
        return self._core.remove_observer(handle)

    @property
    def observer_errors(self) -> int:
        """Callbacks that raised."""
        return self._core.observer_errors

    @property
    def observer_events_dropped(self) -> int:
        """State changes not delivered because the observer queue (4096 events) was full."""
        return self._core.observer_events_dropped

    def flush_observers(self) -> None:
        """Waits until the callbacks have had every state change seen so far (wait() does this
        before it returns)."""
        self._core.flush_observers()

    def submit(self, spec: Union[JobSpec, Dict[str, Any]]) -> str:
        """Submits the job; returns its id."""
        return self._core.submit(_as(JobSpec, spec, "spec").to_dict())

    def state(self, job_id: str) -> Dict[str, Any]:
        return self._core.state(job_id)

    def wait(self, job_id: str, timeout_s: float = 3600.0, poll_s: float = 0.25) -> Dict[str, Any]:
        """Waits (GIL released) until the job ends or the timeout passes; returns its last state."""
        return self._core.wait(job_id, timeout_s, poll_s)

    def cancel(self, job_id: str) -> None:
        self._core.cancel(job_id)


def render_batch_script(spec: Union[JobSpec, Dict[str, Any]]) -> str:
    """The batch script every backend submits for this job."""
    return _core.render_batch_script(_as(JobSpec, spec, "spec").to_dict())
