"""The gateway's ``/readyz`` detail: its dependencies and cache (``/livez``, ``/readyz`` and
``/metrics`` themselves come from ``shared.serving.app.service_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def gateway_readiness(app: FastAPI) -> tuple[bool, dict[str, Any]]:
    """Ready when the gateway can serve a feed; the full detail only if the operator asked
    (``HM_GATEWAY_READYZ_DETAILS=true``)."""
    state = getattr(app.state, "gateway", None)
    if state is None:  # still starting: the catalogue loads in the lifespan
        return False, {"starting": True}
    ready, detail = state.readiness()
    return ready, detail if state.settings.readyz_details else public_readiness(detail)


def public_readiness(detail: dict[str, Any]) -> dict[str, Any]:
    """/readyz for anonymous callers: states and versions, no internal URLs or error text."""
    deps = {
        name: {k: v for k, v in dep.items() if k not in ("url", "detail", "replicas")}
        for name, dep in detail.get("dependencies", {}).items()
    }
    cache = dict(detail.get("cache", {}))
    if cache.get("error"):
        cache["error"] = str(cache["error"]).split(":", 1)[0]  # the exception's class only
    return {**detail, "dependencies": deps, "cache": cache}
