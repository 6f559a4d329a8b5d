"""`hmrec search text|image`, `hmrec index`, `hmrec evaluate search` (JSON shape)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
