"""Render a kustomization the way ``kustomize build`` does, for the features deploy/kubernetes uses.

``kubectl kustomize`` is not on every machine that runs ``make test``; this covers what our
manifests use (resources, namespace, labels without selectors, images, strategic-merge
patches keyed by kind and name, lists of named items merged by name) and nothing else: an
unknown kustomization field is an error, not silently ignored. Where kubectl is present the
tests check that both renderings are equal.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def render(folder: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise ValueError(f"{folder}/kustomization.yaml: fields this renderer does not implement: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        for change in yaml.safe_load_all((folder / patch["path"]).read_text()):
            target = _find(docs, change["kind"], change["metadata"]["name"])
            _merge(target, change)
    for label in spec.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise ValueError("labels into selectors/templates are not implemented")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        _set_namespace(docs, spec["namespace"])
    for image in spec.get("images", []):
        _set_image(docs, image)
    return docs


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise ValueError(f"patch target {kind}/{name} not found")


def _merge(target: dict[str, Any], change: dict[str, Any]) -> None:
    """Strategic merge as our patches use it: maps deep-merged, named lists merged by name."""
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list) and _named(value):
            by_name = {item["name"]: item for item in target[key]}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    target[key].append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _set_namespace(docs: list[dict[str, Any]], namespace: str) -> None:
    for doc in docs:
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        elif doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace


def _set_image(docs: list[dict[str, Any]], image: dict[str, str]) -> None:
    for container in containers(docs):
        name, _, _tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = (
                f"{image.get('newName', name)}:{image['newTag']}" if "newTag" in image else image.get("newName", name)
            )


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for doc in docs:
        spec = pod_spec(doc)
        if spec:
            found += spec.get("initContainers", []) + spec["containers"]
    return found
