"""The evaluation report: one self-contained folder (``index.html`` + PNGs) of the numbers.

Sections, each read from the artifacts the other steps write (never recomputed here,
except the recommender evaluation itself when its JSON is missing and the data is there):

1. offline evaluation   ``<output>/evaluation/metrics.json``        (``hmrec evaluate``)
2. training curves      ``<output>/models/{two_tower,mmoe}/<served version>/history.json``
                        (``hmrec train candidate`` / ``hmrec train ranker``)
3. MMoE gate usage      ``gate_usage`` in the served mmoe ``metadata.json`` (``hmrec explain ranker``)
4. search quality       the JSON of ``hmrec evaluate search --json ...``

A section whose input is missing says which file it looked for and the command that
writes it: the report never shows a number it did not read.

Formats read (as the training code writes them):
- two-tower ``history.json``: ``{"loss": [...], "val_recall": [...], "epoch_seconds": [...], ...}``
  (one value per epoch; ``val_recall`` may be empty when there was no validation week);
- MMoE ``history.json``: ``[{"epoch": 1, "loss": .., "val_auc_<task>": .., "val_rmse_<task>": ..,
  "val_map12": .., "seconds": ..}, ...]``;
- MMoE ``metadata.json``: ``"gate_usage": {task: [mean weight per expert]}``, ``"score_weights"``;
- search JSON: ``{"image": {method: {"p@10_product_group": x, "p@10_colour_group": x}},
  "text": {mode: {"p@12": x, "ms_per_query": x}}, "meta": {...}}``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.artifacts import ArtifactError, model_dir, read_metadata
from shared.config import PathSettings

METRIC_NAMES = ("map@12", "recall@12", "recall@100", "recall@500")
TWO_TOWER, MMOE = "two_tower", "mmoe"
# Where `hmrec evaluate search --json` output is looked for (first found wins), relative to
# the output dir. The first one is what the "missing" message recommends.
SEARCH_JSON_CANDIDATES = (
    "evaluation/search.json",
    "search_eval.json",
    "evaluation/search_eval.json",
    "search/evaluation.json",
)


@dataclass
class Section:
    """One part of the page: a title, HTML body and the PNG files it references."""

    title: str
    body: str
    images: list[str] = field(default_factory=list)
    missing: bool = False


@dataclass
class Report:
    out_dir: Path
    sections: list[Section]

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"


# --- small HTML helpers --------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "&ndash;"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _esc(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` hold cell HTML (already escaped / formatted)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _missing(what: str, looked_for: Path | str, command: str) -> Section:
    return Section(
        title=what,
        body=(
            f'<p class="missing">Not available: no <code>{_esc(looked_for)}</code>. '
            f"Produce it with <code>{_esc(command)}</code>, then run <code>hmrec report</code> again.</p>"
        ),
        missing=True,
    )


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, why it could not be read): a broken file is reported, not fatal."""
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as exc:
        return None, f"{path} could not be read: {exc}"


def _img(name: str, alt: str) -> str:
    return f'<img src="{_esc(name)}" alt="{_esc(alt)}">'


def _pyplot():  # matplotlib.pyplot, imported lazily with the headless backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- 1. evaluation ---------------------------------------------------------------------------------


def load_or_run_evaluation(
    paths: PathSettings, run_if_missing: bool, echo: Callable[[str], None]
) -> tuple[dict[str, Any] | None, str | None]:
    """(metrics JSON, None) or (None, why it is missing). Runs ``hmrec evaluate``'s code when allowed."""
    target = paths.output_dir / "evaluation" / "metrics.json"
    if target.exists():
        return _read_json(target)
    if not run_if_missing:
        return None, f"{target} not found"
    from pipeline.evaluation import evaluate, load_context, write_json

    echo(f"report: {target} not found; running the evaluation (as `hmrec evaluate`)")
    try:
        result = evaluate(load_context(paths))
    except (FileNotFoundError, ValueError, OSError) as exc:
        return None, f"{target} not found and the evaluation could not run: {exc}"
    write_json(result, target)
    return result.to_json(), None


def evaluation_section(
    data: dict[str, Any] | None, why_missing: str | None, out_dir: Path, metrics_path: Path
) -> Section:
    title = "Offline evaluation (the week after the cutoff)"
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        section = _missing(title, metrics_path, "hmrec evaluate")
        if why_missing:
            section.body += f"<p>{_esc(why_missing)}</p>"
        return section
    metrics: dict[str, dict[str, float]] = data.get("metrics", {})
    ranked = sorted(metrics.items(), key=lambda kv: -kv[1].get("map@12", 0.0))
    rows = [[_esc(name), *(_num(m.get(k)) for k in METRIC_NAMES)] for name, m in ranked]
    body = (
        f"<p>Cutoff <b>{_esc(data.get('cutoff', '?'))}</b>: "
        f"{_num(data.get('customers_evaluated'))} customers with a purchase in the 7 days from it. "
        "MAP@12 as in the competition; recall@k = share of each customer's purchases in the top k. "
        "Best MAP@12 first.</p>"
    )
    body += _table(["method", *METRIC_NAMES], rows)
    comparisons = data.get("comparisons") or {}
    if isinstance(comparisons, dict) and comparisons:
        body += (
            "<p>Ratios of MAP@12 with a 95 % paired bootstrap interval (the same customers "
            "resampled for both methods): how much of a difference one week's customers can tell "
            "apart from chance.</p>"
        )
        body += _table(
            ["ratio", "measured", "95 % interval"],
            [
                [_esc(pair), _num(c.get("ratio"), 3), f"{_num(c.get('low'), 3)} – {_num(c.get('high'), 3)}"]
                for pair, c in comparisons.items()
                if isinstance(c, dict)
            ],
        )
    for kind in ("refused", "errors"):
        for name, why in sorted((data.get(kind) or {}).items()):
            body += (
                f'<p class="note">{_esc(kind[:-1] if kind == "errors" else "refused")} '
                f"<b>{_esc(name)}</b>: {_esc(why)}</p>"
            )
    images: list[str] = []
    if ranked:
        plt = _pyplot()
        import numpy as np

        names = [n for n, _ in ranked]
        fig, axes = plt.subplots(1, 2, figsize=(12, 1.6 + 0.45 * len(names)))
        y = np.arange(len(names))
        axes[0].barh(y, [m.get("map@12", 0.0) for _, m in ranked], color="tab:blue")
        axes[0].set_title("MAP@12")
        height = 0.27
        for i, (k, colour) in enumerate(zip(METRIC_NAMES[1:], ("tab:orange", "tab:green", "tab:red"), strict=True)):
            axes[1].barh(y + (i - 1) * height, [m.get(k, 0.0) for _, m in ranked], height, label=k, color=colour)
        axes[1].set_title("recall@k")
        axes[1].legend(loc="lower right", fontsize="small")
        for ax in axes:
            ax.set_yticks(y, names)
            ax.invert_yaxis()
        _save(fig, out_dir / "evaluation.png")
        images.append("evaluation.png")
        body += _img("evaluation.png", "MAP@12 and recall@k per method")
    return Section(title, body, images)


# --- 2. training curves --------------------------------------------------------------------------


def _served(paths: PathSettings, name: str) -> tuple[Path | None, str]:
    try:
        folder = model_dir(paths.models_dir, name)
    except ArtifactError as exc:
        return None, str(exc)
    return folder, ""


def two_tower_curves(paths: PathSettings, out_dir: Path) -> Section:
    title = "Training curves: two-tower candidate model"
    folder, _ = _served(paths, TWO_TOWER)
    if folder is None or not (folder / "history.json").exists():
        where = (folder / "history.json") if folder else paths.models_dir / TWO_TOWER / "<version>" / "history.json"
        return _missing(title, where, "hmrec train candidate")
    history: dict[str, list[float]] = json.loads((folder / "history.json").read_text())
    loss = history.get("loss", [])
    recall = history.get("val_recall", [])
    meta = read_metadata(folder)
    epochs = list(range(1, len(loss) + 1))
    rows = [[str(e), _num(loss[e - 1]), _num(recall[e - 1]) if e - 1 < len(recall) else "&ndash;"] for e in epochs]
    val_k = (meta.get("config") or {}).get("val_k", "k")
    body = (
        f"<p>Served version <b>{_esc(folder.name)}</b> (cutoff {_esc(meta.get('cutoff'))}), "
        f"{len(epochs)} epochs; best epoch {_esc((meta.get('metrics') or {}).get('best_epoch', '?'))}.</p>"
    )
    body += _table(["epoch", "training loss", f"validation recall@{val_k}"], rows)
    plt = _pyplot()
    fig, ax1 = plt.subplots(figsize=(7, 3.5))
    ax1.plot(epochs, loss, "o-", color="tab:blue", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    if recall:
        ax2 = ax1.twinx()
        ax2.plot(epochs[: len(recall)], recall, "s-", color="tab:orange", label=f"val recall@{val_k}")
        ax2.set_ylabel(f"validation recall@{val_k}")
    ax1.set_title(f"two_tower {folder.name}")
    _save(fig, out_dir / "two_tower_curves.png")
    body += _img("two_tower_curves.png", "two-tower training loss and validation recall per epoch")
    return Section(title, body, ["two_tower_curves.png"])


def mmoe_curves(paths: PathSettings, out_dir: Path) -> Section:
    title = "Training curves: MMoE re-ranker"
    folder, _ = _served(paths, MMOE)
    if folder is None or not (folder / "history.json").exists():
        where = (folder / "history.json") if folder else paths.models_dir / MMOE / "<version>" / "history.json"
        return _missing(title, where, "hmrec train ranker")
    history: list[dict[str, float]] = json.loads((folder / "history.json").read_text())
    meta = read_metadata(folder)
    if not history:
        return _missing(title, folder / "history.json (empty)", "hmrec train ranker")
    columns = [k for k in history[0] if k not in ("epoch", "seconds")]
    rows = [[_num(int(h["epoch"])), *(_num(h.get(c)) for c in columns)] for h in history]
    body = (
        f"<p>Served version <b>{_esc(folder.name)}</b> (cutoff {_esc(meta.get('cutoff'))}), "
        f"best epoch {_esc(meta.get('best_epoch', '?'))}; validation MAP@12 after choosing score weights "
        f"{_num((meta.get('metrics') or {}).get('val_map12'))} (two-tower order "
        f"{_num((meta.get('metrics') or {}).get('val_map12_two_tower_order'))}).</p>"
    )
    body += _table(["epoch", *columns], rows)
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(epochs, [h["loss"] for h in history], "o-")
    axes[0].set_title("training loss (task-weighted)")
    for key in (c for c in columns if c.startswith("val_auc_")):
        axes[1].plot(epochs, [h[key] for h in history], "o-", label=key[len("val_auc_") :])
    axes[1].set_title("validation AUC per task")
    if any(c.startswith("val_auc_") for c in columns):
        axes[1].legend(fontsize="small")
    axes[2].plot(epochs, [h.get("val_map12", float("nan")) for h in history], "o-")
    axes[2].set_title("validation MAP@12")
    for ax in axes:
        ax.set_xlabel("epoch")
    _save(fig, out_dir / "mmoe_curves.png")
    body += _img("mmoe_curves.png", "MMoE loss, AUC per task and MAP@12 per epoch")
    return Section(title, body, ["mmoe_curves.png"])


# --- 3. gate usage ---------------------------------------------------------------------------------


def gate_section(paths: PathSettings, out_dir: Path) -> Section:
    title = "MMoE gate usage per task"
    folder, _ = _served(paths, MMOE)
    if folder is None:
        return _missing(title, paths.models_dir / MMOE / "<version>" / "metadata.json", "hmrec train ranker")
    meta = read_metadata(folder)
    usage: dict[str, list[float]] = meta.get("gate_usage") or {}
    if not usage:
        return _missing(title, f"gate_usage in {folder / 'metadata.json'}", "hmrec train ranker")
    n = max(len(w) for w in usage.values())
    rows = [
        [_esc(task), *(_num(w) for w in weights), f"e{max(range(len(weights)), key=weights.__getitem__)}"]
        for task, weights in usage.items()
    ]
    body = (
        "<p>Mean softmax gate weight each task's gate gives each shared expert, over the validation "
        f"customers (as <code>hmrec explain ranker</code> prints). Uniform would be {1 / n:.4f}. "
        f"Score weights: <code>{_esc(json.dumps(meta.get('score_weights', {})))}</code>.</p>"
    )
    body += _table(["task", *(f"e{i}" for i in range(n)), "top expert"], rows)
    plt = _pyplot()
    import numpy as np

    tasks = list(usage)
    matrix = np.array([list(usage[t]) + [np.nan] * (n - len(usage[t])) for t in tasks])
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * n, 1.2 + 0.6 * len(tasks)))
    im = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n), [f"e{i}" for i in range(n)])
    ax.set_yticks(range(len(tasks)), tasks)
    middle = float(np.nanmean(matrix))
    for (i, j), v in np.ndenumerate(matrix):
        if not np.isnan(v):  # dark cells get white text
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < middle else "black")
    fig.colorbar(im, ax=ax, label="mean gate weight")
    ax.set_title(f"mmoe {folder.name}: gate weight per expert")
    _save(fig, out_dir / "mmoe_gates.png")
    body += _img("mmoe_gates.png", "mean gate weight per task and expert")
    return Section(title, body, ["mmoe_gates.png"])


# --- 4. search quality ---------------------------------------------------------------------------


def find_search_json(paths: PathSettings, explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit if explicit.exists() else None
    for rel in SEARCH_JSON_CANDIDATES:
        p = paths.output_dir / rel
        if p.exists():
            return p
    return None


def search_section(paths: PathSettings, out_dir: Path, explicit: Path | None = None) -> Section:
    title = "Search quality"
    found = find_search_json(paths, explicit)
    target = explicit or paths.output_dir / SEARCH_JSON_CANDIDATES[0]
    command = f"hmrec evaluate search --data-dir {paths.data_dir} --json {target}"
    if found is None:
        return _missing(title, target, command)
    data, error = _read_json(found)
    if not isinstance(data, dict) or not (data.get("image") or data.get("text")):
        section = _missing(title, f"'image'/'text' scores in {found}", command)
        section.body += f"<p>{_esc(error)}</p>" if error else ""
        return section
    image: dict[str, dict[str, float]] = data.get("image") or {}
    text: dict[str, dict[str, float]] = data.get("text") or {}
    meta = data.get("meta") or {}
    body = (
        f"<p>From <code>{_esc(found)}</code> ({_num(meta.get('articles'))} articles of "
        f"<code>{_esc(meta.get('data_dir', '?'))}</code>). Image: leave-one-out precision@10, a hit is a "
        "neighbour of the same product group / colour group. Text: p@12 on catalogue-attribute queries "
        '("black dress").</p>'
    )
    images: list[str] = []
    if image:
        body += "<h3>Image search</h3>" + _table(
            ["method", "p@10 product group", "p@10 colour group"],
            [[_esc(m), _num(s.get("p@10_product_group")), _num(s.get("p@10_colour_group"))] for m, s in image.items()],
        )
    if text:
        body += "<h3>Text search</h3>" + _table(
            ["mode", "p@12", "ms per query"],
            [[_esc(m), _num(s.get("p@12")), _num(s.get("ms_per_query"), 2)] for m, s in text.items()],
        )
    plt = _pyplot()
    import numpy as np

    panels = [p for p in (image, text) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.5), squeeze=False)
    col = 0
    if image:
        ax = axes[0][col]
        names = list(image)
        y = np.arange(len(names))
        ax.barh(y - 0.2, [image[m].get("p@10_product_group", 0.0) for m in names], 0.4, label="product group")
        ax.barh(y + 0.2, [image[m].get("p@10_colour_group", 0.0) for m in names], 0.4, label="colour group")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title("image search p@10")
        ax.legend(fontsize="small")
        col += 1
    if text:
        ax = axes[0][col]
        names = list(text)
        ax.barh(names, [text[m].get("p@12", 0.0) for m in names], color="tab:green")
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title("text search p@12")
    _save(fig, out_dir / "search_quality.png")
    images.append("search_quality.png")
    body += _img("search_quality.png", "search precision per method")
    return Section(title, body, images)


# --- the page --------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
.missing { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5em 0.8em; }
.note { color: #8a4b00; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def render_html(sections: list[Section], paths: PathSettings) -> str:
    toc = "".join(
        f'<li><a href="#s{i}">{_esc(s.title)}</a>{" (missing)" if s.missing else ""}</li>'
        for i, s in enumerate(sections)
    )
    parts = "".join(f'<section id="s{i}"><h2>{_esc(s.title)}</h2>{s.body}</section>' for i, s in enumerate(sections))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>H&amp;M recommender: evaluation report</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>H&amp;M two-stage recommender: evaluation report</h1>"
        f"<p>Generated {now} from <code>{_esc(paths.output_dir)}</code> "
        f"(data <code>{_esc(paths.data_dir)}</code>) by <code>hmrec report</code>.</p>"
        f"<ol>{toc}</ol>{parts}</body></html>\n"
    )


def build_report(
    paths: PathSettings,
    out_dir: Path,
    run_evaluation: bool = True,
    search_json: Path | None = None,
    echo: Callable[[str], None] = print,
) -> Report:
    """Write ``out_dir/index.html`` and its PNGs; returns the sections (for the CLI summary)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        # Only PNGs this report writes, so a stale plot of a now-missing section cannot linger.
        for old in out_dir.glob("*.png"):
            old.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    data, why = load_or_run_evaluation(paths, run_evaluation, echo)
    sections = [
        evaluation_section(data, why, out_dir, paths.output_dir / "evaluation" / "metrics.json"),
        two_tower_curves(paths, out_dir),
        mmoe_curves(paths, out_dir),
        gate_section(paths, out_dir),
        search_section(paths, out_dir, search_json),
    ]
    tmp = out_dir / "index.html.tmp"
    tmp.write_text(render_html(sections, paths), encoding="utf-8")
    tmp.replace(out_dir / "index.html")
    return Report(out_dir, sections)
