"""The publish gate: a ranker is served only if it does not lose to the best baseline.

Measured on the ranker's validation lists (customers held out of training in every label
week, candidates from stage one as of that week, features strictly before it): the
trained MMoE's MAP@12 against each baseline ordering of the same lists
(services/ranker/baseline_order.py) and, when it can be scored on those weeks without
leakage, the incumbent.

Decision (``GateDecision.action``):

- ``publish``: the new model wins or ties the best baseline (and the incumbent, when
  comparable), or ``force`` was given;
- ``keep_incumbent``: it loses, and a published ranker exists (one that passed its own gate);
- ``publish_baseline``: it loses and nothing is published yet: the best baseline's order is
  published as the ranker, so ``/recommend`` serves it through the same services.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from services.ranker.baseline_order import BASELINE_ORDERINGS


@dataclass
class GateDecision:
    action: str  # publish | keep_incumbent | publish_baseline
    model_map12: float
    best_baseline: str
    best_baseline_map12: float
    baselines: dict[str, float]
    incumbent: str | None
    incumbent_map12: float | None
    forced: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    metrics: dict[str, float],
    incumbent: str | None,
    incumbent_map12: float | None = None,
    incumbent_passed: bool = True,
    force: bool = False,
) -> GateDecision:
    """The gate's decision from the trained model's validation ``metrics`` (fit_mmoe's)."""
    model_map = float(metrics["val_map12"])
    baselines = {
        n: float(metrics[f"val_map12_baseline_{n}"]) for n in BASELINE_ORDERINGS if f"val_map12_baseline_{n}" in metrics
    }
    best = max(baselines, key=lambda n: baselines[n])
    best_map = baselines[best]
    beats_baseline = model_map >= best_map
    beats_incumbent = incumbent_map12 is None or model_map >= incumbent_map12
    if force:
        action, reason = "publish", "published with --force"
    elif beats_baseline and beats_incumbent:
        action = "publish"
        reason = f"MAP@12 {model_map:.4f} >= best baseline {best} {best_map:.4f}"
        if incumbent_map12 is not None:
            reason += f" and incumbent {incumbent} {incumbent_map12:.4f}"
    elif incumbent is not None and incumbent_passed:
        action = "keep_incumbent"
        reason = (
            f"MAP@12 {model_map:.4f} < "
            + (
                f"best baseline {best} {best_map:.4f}"
                if not beats_baseline
                else f"incumbent {incumbent} {incumbent_map12:.4f}"
            )
            + f": {incumbent} stays served"
        )
    else:
        action = "publish_baseline"
        reason = (
            f"MAP@12 {model_map:.4f} < best baseline {best} {best_map:.4f} and no ranker that passed "
            f"its gate is published: serving baseline:{best}"
        )
    return GateDecision(action, model_map, best, best_map, baselines, incumbent, incumbent_map12, force, reason)
