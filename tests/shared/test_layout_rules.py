"""The rules of the house (docs/architecture.md), checked on the source tree itself."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("candidate", "ranker", "search", "gateway")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_shared_never_imports_services_or_the_cli():
    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0] in ("services", "pipeline"))
        for p in _python_files("shared")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_a_service_never_imports_another_service_or_the_cli():
    offenders = {}
    for service in SERVICES:
        for path in _python_files(f"services/{service}"):
            bad = [
                m
                for m in _imports(path)
                if m.startswith("pipeline") or (m.startswith("services.") and m.split(".")[1] != service)
            ]
            if bad:
                offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}


def test_every_model_service_app_uses_the_shared_skeleton():
    for service in ("candidate", "ranker", "search"):
        assert "model_service_app" in _imports_names(REPO / f"services/{service}/app.py"), service
    assert "service_app" in _imports_names(REPO / "services/gateway/app.py")


def _imports_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}


def test_product_files_never_point_outside_the_repository():
    """Team material beside the repo (../shared, its design notes) is not the product's."""
    product = [*REPO.glob("*.md"), *REPO.glob("*.toml"), *REPO.glob("*.yml"), REPO / "Makefile"]
    for folder in ("shared", "services", "pipeline", "frontend", "docs", "benchmarks"):
        product += [
            p
            for p in (REPO / folder).rglob("*")
            if p.is_file() and p.suffix in (".py", ".md", ".yml", ".sh", ".js", ".html", ".toml", "")
        ]
    hits = [
        str(p.relative_to(REPO))
        for p in product
        if "example-report" not in p.parts and ("../shared" in _text(p) or "DESIGN.md" in _text(p))
    ]
    assert hits == []


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (UnicodeDecodeError, OSError):
        return ""
