"""Plots for notebooks (needs matplotlib: pip install "aifc[plot]").

Every function takes results as an aifc.Result, a path to a saved result, or a list or dict
(label -> result) of them, draws on `ax` (a new figure when None) and returns the axes.
"""
from __future__ import annotations

import math
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._api import Result, load_result

ResultLike = Union[Result, str, os.PathLike]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("aifc.plot needs matplotlib: pip install matplotlib") from e
    return plt


def _labelled(results) -> List[Tuple[str, Result]]:
    def load(r):
        return r if isinstance(r, Result) else load_result(r)

    if isinstance(results, Mapping):
        return [(str(k), load(v)) for k, v in results.items()]
    if isinstance(results, (Result, str, os.PathLike)):
        results = [results]
    out = []
    for i, r in enumerate(results):
        res = load(r)
        label = os.path.basename(os.fspath(r)) if not isinstance(r, Result) else res.document.get("label") or f"run {i + 1}"
        out.append((str(label), res))
    return out


def _samples(result: Result, metric: str) -> List[float]:
    rec = result.records
    ok = rec.get("ok", [])
    warm = rec.get("warmup", [False] * len(ok))
    if metric == "itl":
        values = []
        for tokens, good, w in zip(rec.get("token_ns", []), ok, warm):
            if good and not w and tokens:
                values += [(b - a) / 1e6 for a, b in zip(tokens, tokens[1:])]
        return values
    column = rec.get(f"{metric}_ms", [])
    return [v for v, good, w in zip(column, ok, warm) if good and not w and v is not None and not math.isnan(v)]


def latency_cdf(results, metrics: Sequence[str] = ("ttft", "itl", "e2el"), ax=None):
    """Cumulative distributions of TTFT, ITL and E2E latency (ms), one panel per metric."""
    plt = _plt()
    runs = _labelled(results)
    if ax is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) else [ax] * len(metrics)
    names = {"ttft": "Time to first token", "itl": "Inter-token latency", "e2el": "End-to-end latency",
             "tpot": "Time per output token", "lateness": "Send lateness"}
    for axis, metric in zip(axes, metrics):
        for label, res in runs:
            values = sorted(_samples(res, metric))
            if not values:
                continue
            n = len(values)
            axis.step(values, [(i + 1) / n for i in range(n)], where="post", label=label)
        axis.set_title(names.get(metric, metric))
        axis.set_xlabel("ms")
        axis.set_ylabel("fraction of samples")
        axis.grid(True, alpha=0.3)
        if len(runs) > 1:
            axis.legend()
    return axes


def throughput_over_time(result: ResultLike, bin_s: float = 1.0, ax=None):
    """Output tokens per second and requests in flight over the run."""
    plt = _plt()
    (label, res), = _labelled(result)
    rec = res.records
    starts = [s for s, w in zip(rec.get("send_ns", []), rec.get("warmup", [])) if s is not None and s >= 0 and not w]
    if not starts:
        raise ValueError("the result has no per-request records to plot")
    t0 = min(starts)
    bins: Dict[int, int] = {}
    for tokens, good, w in zip(rec["token_ns"], rec["ok"], rec.get("warmup", [False] * len(rec["ok"]))):
        if good and not w:
            for t in tokens:
                b = int((t - t0) / 1e9 / bin_s)
                bins[b] = bins.get(b, 0) + 1
    events = []
    for s, e, w in zip(rec["send_ns"], rec["end_ns"], rec.get("warmup", [False] * len(rec["send_ns"]))):
        if not w and s is not None and s >= 0 and e is not None and e >= 0:
            events += [((s - t0) / 1e9, 1), ((e - t0) / 1e9, -1)]
    events.sort()
    times, level, in_flight = [], 0, []
    for t, d in events:
        level += d
        times.append(t)
        in_flight.append(level)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    xs = sorted(bins)
    ax.bar([x * bin_s for x in xs], [bins[x] / bin_s for x in xs], width=bin_s, align="edge", alpha=0.6,
           label="output tokens/s")
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("output tokens/s")
    twin = ax.twinx()
    twin.step(times, in_flight, where="post", color="C1", label="requests in flight")
    twin.set_ylabel("requests in flight")
    ax.set_title(f"Throughput and concurrency: {label}")
    return ax


def compare(results, keys: Sequence[str] = ("mean_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "p99_itl_ms",
                                            "mean_e2el_ms"), ax=None):
    """Side-by-side bars of summary values (ms) for several saved or in-memory results."""
    plt = _plt()
    runs = _labelled(results)
    keys = [k for k in keys if any(k in r.summary for _, r in runs)]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 1.6 * len(keys) * max(1, len(runs)) / 2), 3.8))
    width = 0.8 / max(1, len(runs))
    for i, (label, res) in enumerate(runs):
        ax.bar([k + i * width for k in range(len(keys))], [res.summary.get(key, 0) or 0 for key in keys], width,
               label=label)
    ax.set_xticks([k + width * (len(runs) - 1) / 2 for k in range(len(keys))])
    ax.set_xticklabels(keys, rotation=20)
    ax.set_ylabel("ms")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    return ax
