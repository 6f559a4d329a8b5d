"""Offline evaluation: score every available recommender on the week after a cutoff.

Plug-in contract: every module that ``pipeline.methods.METHOD_MODULES`` names defines
``build_methods(ctx: EvalContext) -> dict[str, Callable[[list[str]], dict[str, list[str]]]]``.
It returns ``{}`` when its artifacts do not exist, and raises :class:`LeakageError` when
its model saw the days it would be scored on (use :func:`check_model_cutoff`). Each
callable maps customer ids to their ranked article ids (best first, up to ``ctx.k``).

Scored customers are those with at least one purchase in ``[cutoff, cutoff + 7 days)``;
every method sees only ``ctx.history`` (rows strictly before the cutoff) or its own
artifacts, whose training cutoff it must check.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.ranking_metrics import means, paired_ratio_interval, per_customer_metrics
from shared.config import PathSettings
from shared.data import Dataset, load_dataset
from shared.split import default_cutoff, label_week, purchases_by_customer
from shared.split import history_before as _history_before

Method = Callable[[list[str]], dict[str, list[str]]]

MAP_K = 12
RECALL_KS: tuple[int, ...] = (12, 100, 500)
DEFAULT_K = 500
METRIC_NAMES: tuple[str, ...] = (f"map@{MAP_K}", *(f"recall@{k}" for k in RECALL_KS))


class LeakageError(Exception):
    """A model was trained on days it would be scored on; its scores would be meaningless."""


def check_model_cutoff(model_cutoff: date | None, eval_cutoff: date, what: str) -> None:
    """Refuse a model whose training data reaches into the scored week.

    ``model_cutoff`` is the first day the model did *not* train on (``None``: trained on
    everything). A model is usable on the week starting at ``eval_cutoff`` only when
    ``model_cutoff <= eval_cutoff``.
    """
    if model_cutoff is None:
        raise LeakageError(
            f"{what} was trained on all data (cutoff none), including the scored week "
            f"starting {eval_cutoff.isoformat()}; retrain with --cutoff {eval_cutoff.isoformat()} or earlier"
        )
    if model_cutoff > eval_cutoff:
        raise LeakageError(
            f"{what} was trained on data up to {model_cutoff.isoformat()} (exclusive), which overlaps the "
            f"scored week starting {eval_cutoff.isoformat()}; retrain with --cutoff {eval_cutoff.isoformat()} "
            "or earlier"
        )


@dataclass
class EvalContext:
    """Everything a method needs to predict the week starting at ``cutoff``."""

    dataset: Dataset
    cutoff: date
    history: pd.DataFrame
    labels: dict[str, set[str]]
    customers: list[str]
    paths: PathSettings
    k: int = DEFAULT_K
    seed: int = 0
    # Work the method modules share within one evaluation (e.g. the week's stage one).
    memo: dict[str, Any] = field(default_factory=dict)


def make_context(
    dataset: Dataset,
    paths: PathSettings,
    cutoff: date | None = None,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> EvalContext:
    """Split ``dataset`` at ``cutoff`` (default: the last 7 days are labels)."""
    tx = dataset.transactions
    if tx.empty:
        raise ValueError("no transactions to evaluate on")
    cut = cutoff if cutoff is not None else default_cutoff(tx)
    labels = purchases_by_customer(label_week(tx, cut))
    if not labels:
        raise ValueError(
            f"no purchases in the week starting {cut.isoformat()} "
            f"(data covers {tx['t_dat'].min():%Y-%m-%d} to {tx['t_dat'].max():%Y-%m-%d})"
        )
    history = _history_before(tx, cut)
    return EvalContext(
        dataset=dataset,
        cutoff=cut,
        history=history,
        labels=labels,
        customers=sorted(labels),
        paths=paths,
        k=k,
        seed=seed,
    )


def load_context(paths: PathSettings, cutoff: date | None = None, k: int = DEFAULT_K, seed: int = 0) -> EvalContext:
    dataset = load_dataset(paths.data_dir, paths.cache_dir)
    return make_context(dataset, paths, cutoff, k, seed)


def method_modules() -> list[Any]:
    """Import the method families ``pipeline.methods.METHOD_MODULES`` names, in that order."""
    from pipeline.methods import METHOD_MODULES

    return [importlib.import_module(name) for name in METHOD_MODULES]


@dataclass
class Discovery:
    """The methods found, the modules that refused (leakage) and those that crashed."""

    methods: dict[str, Method] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def discover_methods(ctx: EvalContext, modules: Sequence[Any] | None = None) -> Discovery:
    """Call ``build_methods(ctx)`` of every module; collect methods, refusals and errors.

    A module that raises :class:`LeakageError` is refused (keyed by its module name); a
    module that crashes is reported with its error rather than silently dropped, and does
    not stop the others from being evaluated.
    """
    found = Discovery()
    for module in modules if modules is not None else method_modules():
        build = getattr(module, "build_methods", None)
        if build is None:
            continue
        name = module.__name__.rsplit(".", 1)[-1]
        try:
            methods = build(ctx)
        except LeakageError as exc:
            found.refused[name] = str(exc)
            continue
        except Exception as exc:  # one broken plug-in must not hide the others
            found.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        for method_name, method in methods.items():
            if method_name in found.methods:
                found.errors[method_name] = f"defined twice (again by module {name})"
                continue
            found.methods[method_name] = method
    return found


@dataclass
class EvaluationResult:
    cutoff: date
    customers_evaluated: int
    metrics: dict[str, dict[str, float]]
    refused: dict[str, str]
    errors: dict[str, str]
    seconds: dict[str, float]
    # "<a>/<b>" -> {"ratio", "low", "high"}: MAP@12 of a over b with a 95 % paired bootstrap interval
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cutoff": self.cutoff.isoformat(),
            "customers_evaluated": self.customers_evaluated,
            "metrics": self.metrics,
            "refused": self.refused,
        }
        if self.errors:
            out["errors"] = self.errors
        if self.comparisons:
            out["comparisons"] = self.comparisons
        out["seconds"] = self.seconds
        return out


# Ratios worth a confidence interval: the two stages against each other and against the
# baselines, and the MMoE against its single-task ablation.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("pipeline", "two_tower"),
    ("pipeline", "best_baseline"),
    ("pipeline", "single_task"),
    ("two_tower", "best_baseline"),
    ("two_tower", "repurchase_popular"),
    ("stage_one", "best_baseline"),
    ("served", "pipeline"),
    ("served_http", "pipeline"),
)
BASELINES: tuple[str, ...] = (
    "repurchase_popular",
    "recent_popular",
    "recent_trending",
    "age_trending",
    "decayed_popular",
    "age_popular",
    "popular",
    "random",
)


def score_method(
    method: Method, ctx: EvalContext, per_customer: dict[str, np.ndarray] | None = None, name: str = ""
) -> dict[str, float]:
    """Run one method on the scored customers and compute MAP@12 and recall@k (and, into
    ``per_customer[name]``, every customer's AP@12 for the paired intervals)."""
    values = per_customer_metrics(method(list(ctx.customers)), ctx.labels, map_k=MAP_K, recall_ks=RECALL_KS)
    if per_customer is not None:
        per_customer[name] = values[f"map@{MAP_K}"]
    return means(values)


def compare(metrics: dict[str, dict[str, float]], per_customer: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """MAP@12 ratios of :data:`COMPARISONS` with 95 % paired bootstrap intervals."""
    aps = dict(per_customer)
    scored = [b for b in BASELINES if b in metrics and b in aps]
    best = max(scored, key=lambda b: metrics[b][f"map@{MAP_K}"]) if scored else None
    if best is not None:
        aps["best_baseline"] = aps[best]
    out: dict[str, dict[str, Any]] = {}
    for a, b in COMPARISONS:
        if a in aps and b in aps:
            ratio, low, high = paired_ratio_interval(aps[a], aps[b])
            if np.isfinite(ratio):
                # high is None when the interval is unbounded (JSON has no Infinity)
                out[f"{a}/{b}"] = {
                    "ratio": round(ratio, 4),
                    "low": round(low, 4),
                    "high": round(high, 4) if np.isfinite(high) else None,
                }
                if b == "best_baseline":
                    out[f"{a}/{b}"]["baseline"] = best
    return out


def evaluate(
    ctx: EvalContext,
    only: Sequence[str] | None = None,
    modules: Sequence[Any] | None = None,
    extra: dict[str, Method] | None = None,
) -> EvaluationResult:
    """Discover the methods, score those selected (``only``: names, default all) and ``extra``
    (e.g. the served replay, pipeline/served.py)."""
    found = discover_methods(ctx, modules)
    found.methods.update(extra or {})
    selected = list(found.methods)
    if only is not None:
        unknown = [m for m in only if m not in found.methods and m not in found.refused]
        if unknown:
            available = ", ".join(sorted(found.methods)) or "none"
            raise KeyError(f"unknown or unavailable method(s): {', '.join(unknown)} (available: {available})")
        selected = [m for m in selected if m in only]
    metrics: dict[str, dict[str, float]] = {}
    per_customer: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    refused = dict(found.refused)
    errors = dict(found.errors)
    for name in selected:
        start = time.perf_counter()
        try:
            metrics[name] = score_method(found.methods[name], ctx, per_customer, name)
        except LeakageError as exc:
            refused[name] = str(exc)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        seconds[name] = round(time.perf_counter() - start, 3)
    return EvaluationResult(
        cutoff=ctx.cutoff,
        customers_evaluated=len(ctx.customers),
        metrics=metrics,
        refused=refused,
        errors=errors,
        seconds=seconds,
        comparisons=compare(metrics, per_customer),
    )


def format_table(result: EvaluationResult) -> str:
    """A plain-text table: one row per method, best MAP@12 first."""
    header = ["method", *METRIC_NAMES, "seconds"]
    rows = [
        [name, *(f"{m[k]:.5f}" for k in METRIC_NAMES), f"{result.seconds.get(name, 0.0):.1f}"]
        for name, m in sorted(result.metrics.items(), key=lambda kv: -kv[1][f"map@{MAP_K}"])
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"cutoff {result.cutoff.isoformat()}, {result.customers_evaluated} customers with purchases in the week",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for pair, c in result.comparisons.items():
        which = f" ({c['baseline']})" if "baseline" in c else ""
        high = f"{c['high']:.3f}" if c["high"] is not None else "unbounded"
        lines.append(
            f"MAP@12 {pair}{which}: {c['ratio']:.3f}x (95 % paired bootstrap over customers: {c['low']:.3f}-{high})"
        )
    for name, why in sorted(result.refused.items()):
        lines.append(f"refused {name}: {why}")
    for name, why in sorted(result.errors.items()):
        lines.append(f"error {name}: {why}")
    return "\n".join(lines)


def write_json(result: EvaluationResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def write_plot(result: EvaluationResult, path: Path) -> None:
    """A bar chart of MAP@12 per method (best first), beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(result.metrics.items(), key=lambda kv: -kv[1][f"map@{MAP_K}"])
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.4 * max(1, len(items))))
    ax.barh([n for n, _ in items][::-1], [m[f"map@{MAP_K}"] for _, m in items][::-1])
    ax.set_xlabel(f"MAP@{MAP_K}")
    ax.set_title(f"Week from {result.cutoff.isoformat()} ({result.customers_evaluated} customers)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
