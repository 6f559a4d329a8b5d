"""A synthetic world is trusted only once its completion marker says so (written last)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline.synthetic.world as world
from pipeline.commands.run import _has_data
from pipeline.synthetic.world import WORLD_MARKER, generate_world, world_status


def test_interrupted_generation_is_incomplete_and_not_data(tmp_path: Path, monkeypatch) -> None:
    def interrupted(path, rows):
        Path(path).write_text("t_dat,customer_id,article_id,price,sales_channel_id\n2020-09-01,")
        raise KeyboardInterrupt

    monkeypatch.setattr(world, "write_transactions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path, scale="tiny", seed=0, images=False)
    assert (tmp_path / "articles.csv").exists() and (tmp_path / "transactions_train.csv").exists()
    assert world_status(tmp_path) == "incomplete"
    assert not _has_data(tmp_path)  # `hmrec run` generates it again


def test_complete_world_is_trusted_until_a_csv_changes(tmp_path: Path) -> None:
    generate_world(tmp_path, scale="tiny", seed=0, images=False)
    assert world_status(tmp_path) == "complete" and _has_data(tmp_path)
    tx = tmp_path / "transactions_train.csv"
    tx.write_bytes(tx.read_bytes()[: tx.stat().st_size // 2])  # truncated after the fact
    assert world_status(tmp_path) == "incomplete" and not _has_data(tmp_path)
    (tmp_path / WORLD_MARKER).write_text('{"state": "comp')  # a marker cut short
    assert world_status(tmp_path) == "incomplete"


def test_csvs_without_a_marker_are_external_data(tmp_path: Path) -> None:
    assert world_status(tmp_path) == "missing" and not _has_data(tmp_path)
    (tmp_path / "articles.csv").write_text("article_id\n1\n")
    (tmp_path / "transactions_train.csv").write_text("t_dat\n")
    assert world_status(tmp_path) == "external" and _has_data(tmp_path)  # e.g. the Kaggle files
