"""The rules of the house (docs/architecture.md), checked on the source tree itself."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("candidate", "ranker", "search", "gateway")


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_shared_never_imports_services_or_the_cli():
    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in _imported_modules(p) if m.split(".")[0] in ("services", "pipeline"))
        for p in _python_files("shared")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_a_service_never_imports_another_service_or_the_cli():
    offenders = {}
    for service in SERVICES:
        for path in _python_files(f"services/{service}"):
            bad = [
                m
                for m in _imported_modules(path)
                if m.startswith("pipeline") or (m.startswith("services.") and m.split(".")[1] != service)
            ]
            if bad:
                offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}


# Modules only the offline pipeline runs: the serving process (app.py and all it imports) must
# not load them (training pulls in TensorFlow and GBs of training data structures).
OFFLINE_ONLY = {
    "candidate": {"train", "batch"},
    "ranker": {"train", "dataset", "keras_mmoe", "validation", "gate", "rerank"},
    "search": {"evaluate"},
    "gateway": set(),
}


def _module_file(module: str) -> Path | None:
    path = REPO / (module.replace(".", "/") + ".py")
    if path.exists():
        return path
    package = REPO / module.replace(".", "/") / "__init__.py"
    return package if package.exists() else None


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file; ``from pkg import mod`` counts ``pkg.mod``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}"))
    return found


def _closure_within(start: str, prefix: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        todo += [m for m in _imported_modules(path) if m.startswith(prefix)]
    return seen


def test_the_pipeline_imports_services_only_through_their_front_door():
    """``pipeline/`` calls ``services.<name>`` (its ``__init__``), never a module inside it, and
    only names the front door exports (``from services.candidate import train`` would reach a module)."""
    import importlib

    offenders = {}
    for path in _python_files("pipeline"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name.startswith("services.")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services"):
                module = node.module or ""
                exported = getattr(importlib.import_module(module), "_EXPORTS", {}) if module.count(".") == 1 else {}
                bad = [f"{module}.{a.name}" for a in node.names if a.name not in exported]
            else:
                continue
            if bad:
                offenders.setdefault(str(path.relative_to(REPO)), []).extend(bad)
    assert offenders == {}


def test_no_relative_imports():
    """Every import names its package, so the rules above see it."""
    relative = [
        f"{p.relative_to(REPO)}:{n.lineno}"
        for folder in ("shared", "services", "pipeline")
        for p in _python_files(folder)
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level > 0
    ]
    assert relative == []


def test_serving_modules_never_import_offline_only_ones():
    for service, offline in OFFLINE_ONLY.items():
        assert all((REPO / f"services/{service}/{m}.py").is_file() for m in offline), service
        reached = {m.rsplit(".", 1)[-1] for m in _closure_within(f"services.{service}.app", f"services.{service}.")}
        assert reached & offline == set(), service


def test_a_front_door_loads_nothing_until_a_name_is_used():
    """Importing ``services.<name>`` (as its own serving process does) runs no other module of it."""
    import subprocess
    import sys

    packages = ", ".join(f"services.{s}" for s in SERVICES)
    code = f"import sys, {packages}; print(sorted(m for m in sys.modules if m.startswith('services.') and m.count('.') > 1))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_every_front_door_name_resolves():
    import importlib

    for service in SERVICES:
        package = importlib.import_module(f"services.{service}")
        for name in package.__all__:
            assert getattr(package, name) is not None, (service, name)
        assert sorted(package.__all__) == sorted(package._EXPORTS), service


def test_shared_holds_only_what_services_use():
    """Offline-only code (the synthetic world, statistics, ranking metrics) lives with the pipeline:
    every module in ``shared/`` is imported by a service, directly or through another shared module."""
    used: set[str] = set()
    for service in SERVICES:
        for path in _python_files(f"services/{service}"):
            used |= _closure_within(path.relative_to(REPO).with_suffix("").as_posix().replace("/", "."), "shared.")
    modules = {
        p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
        for p in _python_files("shared")
        if p.name != "__init__.py"
    }
    assert modules - used == set()


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
    for folder in ("shared", "services", "pipeline", "frontend", "docs", "benchmarks", "deploy"):
        product += [
            p
            for p in (REPO / folder).rglob("*")
            if p.is_file()
            and p.suffix in (".py", ".md", ".yml", ".yaml", ".sh", ".js", ".html", ".toml", ".Dockerfile", "")
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
