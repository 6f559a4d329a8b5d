"""`hmrec search text|image`, `hmrec index`, `hmrec evaluate search` (JSON shape), and the
indexes on a synthetic world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli


@pytest.fixture(scope="module")
def cli_output(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output dir holding (a copy of) the session's index, as `hmrec index` leaves it."""
    out = tmp_path_factory.mktemp("cli_out")
    shutil.copytree(index_dir, out / "search")
    return out


def test_search_text_command_prints_and_writes_json(cli_output: Path, sample_world: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "search",
            "text",
            "black dress",
            "--k",
            "3",
            "--mode",
            "tfidf",
            "--filter",
            "colour_group_name=Black",
            "--output-dir",
            str(cli_output),
            "--data-dir",
            str(sample_world),
        ],
    )
    assert result.exit_code == 0, result.output
    written = json.loads((cli_output / "final_recs_text_query.json").read_text())
    assert written["query"]["query"] == "black dress" and written["query"]["filters"]["colour_group_name"] == ["Black"]
    assert len(written["results"]) == 3 and written["mode"] == "tfidf"
    assert written["results"][0]["article_id"] in result.output


def test_search_text_command_refuses_bad_filters(cli_output: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "text", "dress", "--filter", "size=M", "--output-dir", str(cli_output)])
    assert result.exit_code == 2 and "unknown filter 'size'" in result.output
    result = CliRunner().invoke(cli, ["search", "text", "  ", "--output-dir", str(cli_output)])
    assert result.exit_code == 2


def test_search_image_command_writes_json(cli_output: Path, sample_articles, hm_sample_dir: Path) -> None:
    article_id = sample_articles["article_id"].iloc[7]
    photo = hm_sample_dir / "images" / article_id[:3] / f"{article_id}.jpg"
    result = CliRunner().invoke(cli, ["search", "image", str(photo), "--k", "4", "--output-dir", str(cli_output)])
    assert result.exit_code == 0, result.output
    written = json.loads((cli_output / "final_recs_img_query.json").read_text())
    ids = [r["article_id"] for r in written["results"]]
    assert len(ids) == 4 and article_id not in ids and written["query"]["image"] == str(photo)


def test_search_image_command_refuses_a_non_image(cli_output: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a photo")
    result = CliRunner().invoke(cli, ["search", "image", str(bogus), "--output-dir", str(cli_output)])
    assert result.exit_code == 1 and "JPEG, PNG or WebP" in result.output


def test_search_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "text", "dress", "--output-dir", str(tmp_path)])
    assert result.exit_code == 1 and "hmrec index" in result.output


@pytest.mark.slow
def test_evaluate_search_json_shape(sample_world: Path, tmp_path: Path) -> None:
    target = tmp_path / "eval.json"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "search",
            "--data-dir",
            str(sample_world),
            "--json",
            str(target),
            "--limit",
            "60",
            "--work-dir",
            str(tmp_path / "work"),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(target.read_text())
    for method in ("embedder", "colour_histogram", "default"):
        assert set(body["image"][method]) == {"p@10_product_group", "p@10_colour_group"}
        assert all(0 <= v <= 1 for v in body["image"][method].values())
    for mode in ("tfidf", "semantic", "hybrid"):
        assert 0 <= body["text"][mode]["p@12"] <= 1
    assert body["meta"]["image"]["photos"] == 60  # the 60 first articles all have photos
    assert "image search" in result.output and "text search" in result.output


def test_precision_and_leave_one_out_by_hand() -> None:
    from services.search.evaluate import loo_neighbours, precision_at_k

    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbours = loo_neighbours(vectors, np.arange(4), k=1)
    assert neighbours.ravel().tolist() == [1, 0, 3, 2]  # never itself
    labels = np.array(["a", "a", "b", "a"], dtype=object)
    # hits: 0->1 (a=a), 1->0 (a=a), 2->3 (b!=a), 3->2 (a!=b) -> 2 of 4
    assert precision_at_k(neighbours, labels, np.arange(4)) == 0.5


def test_text_queries_come_from_catalogue_pairs(sample_articles) -> None:
    from services.search.evaluate import text_queries

    queries = dict(text_queries(sample_articles, min_relevant=3))
    pair_counts = sample_articles.groupby(["colour_group_name", "product_type_name"]).size()
    assert "black trousers" in queries
    assert len(queries["black trousers"]) == pair_counts[("Black", "Trousers")]
    assert all(len(rows) >= 3 for rows in queries.values())


@pytest.mark.slow
def test_indexes_build_and_answer_on_a_synthetic_world(tiny_world: Path, tmp_path: Path) -> None:
    """The synthetic world's files go through the same builders (first 60 articles, to stay quick)."""
    from services.search.engine import SearchIndex
    from services.search.index import build_image_index, build_text_index, write_manifest
    from services.search.settings import SearchSettings
    from shared.data import load_dataset

    data = load_dataset(tiny_world)
    articles = data.articles.head(60)
    out = tmp_path / "search"
    write_manifest(out, build_text_index(articles, data.transactions, out, progress=False))
    write_manifest(out, build_image_index(articles, tiny_world / "images", out, progress=False))
    index = SearchIndex.load(out, SearchSettings(index_dir=out, models_dir=tmp_path / "models"))
    dress_like = articles["product_type_name"].iloc[0]
    answer = index.text_search(dress_like.lower(), k=3, mode="tfidf")
    assert answer.results and all(r.article_id in set(articles["article_id"]) for r in answer.results)
    assert index.describe()["photos"] == 60
