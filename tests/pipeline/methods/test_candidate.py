"""The candidate stage's evaluation methods on `tiny`: two-tower, stage one, each source alone, and the leakage refusal."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from shared.contract.schemas import CANDIDATE_SOURCES

pytestmark = pytest.mark.slow


def test_evaluation_methods_and_leakage_refusal(trained, tiny_dataset, tiny_cutoff, tmp_path):
    from pipeline.evaluation import LeakageError, make_context
    from pipeline.methods import candidate as methods
    from shared.config import PathSettings

    paths = PathSettings(data_dir=tmp_path, output_dir=tmp_path / "out")
    shutil.copytree(trained, paths.models_dir)
    ctx = make_context(tiny_dataset, paths, tiny_cutoff, k=50)
    found = methods.build_methods(ctx)
    assert set(found) == {"two_tower", "stage_one", *(f"source_{s}" for s in CANDIDATE_SOURCES)}
    some = ctx.customers[:20]
    ranked = found["two_tower"](some)
    assert set(ranked) == set(some) and all(len(v) == 50 for v in ranked.values())
    listed = found["stage_one"](some)
    assert all(len(v) == len(set(v)) for v in listed.values())
    # each source alone is a subset of the merged list
    alone = found["source_repurchase"](some)
    assert all(set(alone[c]) <= set(listed[c]) for c in alone)
    # the model was trained up to tiny_cutoff: scoring the week before it would leak
    with pytest.raises(LeakageError):
        methods.build_methods(make_context(tiny_dataset, paths, tiny_cutoff - timedelta(days=7), k=50))
    # no model at all: no methods
    empty = PathSettings(data_dir=tmp_path, output_dir=tmp_path / "nothing")
    assert methods.build_methods(make_context(tiny_dataset, empty, tiny_cutoff)) == {}
