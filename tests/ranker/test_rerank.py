"""Batch re-ranking of the candidate file and the `hmrec rerank` / `hmrec explain ranker` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from services.ranker.rerank import customer_chunks, rerank_file
from services.ranker.serving import LoadedRanker
from tests.ranker.conftest import A1, A2, A3, A4, C1, C2, C3


def candidate_file(path: Path, customers: list[str], per_customer: list[str]) -> Path:
    rows = [(c, a, 1.0 - 0.1 * j, j + 1) for c in customers for j, a in enumerate(per_customer)]
    pd.DataFrame(rows, columns=["customer_id", "article_id", "score", "rank"]).to_parquet(path, index=False)
    return path


def test_rerank_file_writes_top_k_per_customer(tmp_path: Path, models_dir: Path) -> None:
    src = candidate_file(tmp_path / "in.parquet", [C1, C2, C3], [A1, A2, A3, A4, "0000000077"])
    ranker = LoadedRanker.load(models_dir / "mmoe" / "v1")
    # Tiny batches and chunks: customers straddle record batches and are carried over.
    stats = rerank_file(ranker, src, tmp_path / "out.parquet", k=3, max_candidates=4, chunk_customers=1, progress=False)
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert stats.customers == 3 and stats.rows_in == 12 and stats.rows_out == 9
    assert list(out.columns) == [
        "customer_id",
        "article_id",
        "score",
        "score_purchase",
        "score_online",
        "score_revenue",
        "candidate_score",
        "rank",
    ]
    for _, g in out.groupby("customer_id"):
        assert g["rank"].tolist() == [1, 2, 3]
        assert g["score"].is_monotonic_decreasing
        assert "0000000077" not in set(g["article_id"])  # 5th by two-tower score: beyond max_candidates=4
    direct = ranker.rank(C2, [A1, A2, A3, A4], [1.0, 0.9, 0.8, 0.7], 3)
    assert out[out.customer_id == C2]["article_id"].tolist() == direct.article_ids


def test_chunks_carry_customers_across_batches_and_refuse_split_customers(tmp_path: Path) -> None:
    src = candidate_file(tmp_path / "in.parquet", [C1, C2, C3], [A1, A2, A3])
    chunks = [c.to_pandas() for c in customer_chunks(src, chunk_customers=2, batch_rows=2)]
    # Each customer lands whole in exactly one chunk, in file order.
    owners = [c for chunk in chunks for c in pd.unique(chunk.customer_id)]
    assert owners == [C1, C2, C3]
    assert sorted(pd.concat(chunks).customer_id.value_counts().tolist()) == [3, 3, 3]
    only = [c.to_pandas() for c in customer_chunks(src, 10, customer_ids=[C2])]
    assert set(pd.concat(only).customer_id) == {C2}
    for rows in (1, 3):  # the customer comes back in a later batch, or in the same one
        bad = tmp_path / "bad.parquet"
        pd.DataFrame(
            {"customer_id": [C1, C2, C1], "article_id": [A1, A1, A2], "score": [1.0, 1.0, 0.5], "rank": [1, 1, 2]}
        ).to_parquet(bad, index=False)
        with pytest.raises(ValueError, match="not contiguous"):
            list(customer_chunks(bad, 1, batch_rows=rows))


def test_the_batch_file_holds_what_rerank_frame_ranks(tmp_path: Path, models_dir: Path) -> None:
    """The arrow path of the batch (ids looked up once per chunk, rows as ints) gives the scores,
    ranks and order of :meth:`LoadedRanker.rerank_frame`, the evaluation's path, row for row:
    unknown customers and articles, source columns and tied scores included."""
    rng = np.random.default_rng(0)
    customers = [C3, C1, "d" * 64, C2]  # file order is not id order; "d"*64 is unknown to the store
    articles = [A1, A2, A3, A4, "0000000077"]
    rows = []
    for c in customers:
        for j, a in enumerate(articles):
            rows.append((c, a, float(rng.choice([0.5, 0.25, rng.random()])), j + 1))
    frame = pd.DataFrame(rows, columns=["customer_id", "article_id", "score", "rank"])
    frame["src_repurchase"] = rng.choice([0.0, 0.7], len(frame)).astype(np.float32)
    frame["src_popular"] = rng.random(len(frame)).astype(np.float32)
    src = tmp_path / "in.parquet"
    frame.to_parquet(src, index=False)
    ranker = LoadedRanker.load(models_dir / "mmoe" / "v1")
    expected = pd.concat(
        [ranker.rerank_frame(frame.iloc[:15], k=4), ranker.rerank_frame(frame.iloc[15:], k=4)], ignore_index=True
    )
    for workers in (1, 3):  # chunks scored on a pool, written in file order
        chunk = 3 if workers == 1 else 1
        rerank_file(ranker, src, tmp_path / "out.parquet", k=4, chunk_customers=chunk, workers=workers, progress=False)
        batch = pd.read_parquet(tmp_path / "out.parquet")
        if workers == 1:
            pd.testing.assert_frame_equal(batch, expected[batch.columns], check_dtype=False)
        else:  # one customer a chunk: the same rows, in file order (C3, C1, "d"*64, C2)
            assert list(pd.unique(batch["customer_id"])) == customers
            mine = batch.set_index(["customer_id", "rank"]).sort_index()
            want = expected.astype({"rank": "int32"}).set_index(["customer_id", "rank"]).sort_index()
            pd.testing.assert_frame_equal(mine, want[mine.columns])


def test_rerank_and_explain_commands(tmp_path: Path, models_dir: Path) -> None:
    from pipeline.cli import cli

    out_dir = models_dir.parent
    (out_dir / "inference").mkdir()
    candidate_file(out_dir / "inference" / "inference_results.parquet", [C1, C2], [A1, A2, A3])
    runner = CliRunner()
    result = runner.invoke(cli, ["rerank", "--output-dir", str(out_dir), "--customer-id", C1, "--k", "2"])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(out_dir / "reranked_recommendations.parquet")
    assert set(out.customer_id) == {C1} and len(out) == 2
    result = runner.invoke(cli, ["explain", "ranker", "--output-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert "purchase" in result.output and "e3" in result.output and "0.250" in result.output
    missing = runner.invoke(cli, ["rerank", "--output-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "hmrec infer" in missing.output
