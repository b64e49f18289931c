"""The Gateway API routes and the gateway-specific components: routes reach the Service with
timeouts longer than the app's own deadlines and never expose the internal endpoints; the NGINX
body limit sits just above the cap the app really installs; the sticky-routing policy hashes
the route that carries the SAM requests."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.api.middleware import BodyLimitMiddleware
from app.main import create_app
from tests.deploy.manifests import SERVICE, Obj, find, load_settings, rendered, settings_of


def seconds(duration: str) -> float:
    """A Gateway API / Go duration ("95s", "1m30s", "500ms") in seconds."""
    parts = re.findall(r"(\d+)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * scale[u] for n, u in parts)


def nginx_size(size: str) -> int:
    """An NGINX size ("29m") in bytes."""
    match = re.fullmatch(r"(\d+)([kmg]?)", size)
    assert match, size
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2)]


def routes(objs: tuple[Obj, ...]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "HTTPRoute"}


@pytest.mark.parametrize("name", SERVICE)
def test_routes_reach_the_service_with_long_enough_timeouts(
    name: str, app_routes: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = rendered(name)
    service = find(objs, "Service")
    port = service["spec"]["ports"][0]["port"]
    settings = load_settings(monkeypatch, settings_of(objs, "prelabel-settings"))
    routed: list[dict[str, Any]] = []
    for route in routes(objs).values():
        (rule,) = route["spec"]["rules"]  # one rule a route: policies attach to a whole route
        assert rule["backendRefs"] == [{"name": service["metadata"]["name"], "port": port}]
        request_s = seconds(rule["timeouts"]["request"])
        assert seconds(rule["timeouts"]["backendRequest"]) <= request_s
        for match in rule["matches"]:
            path = match["path"]
            routed.append(path)
            if path["type"] == "PathPrefix":
                assert any(r.startswith(path["value"]) for r in app_routes), path
                # The scheduler's deadline answers 504 first, with room for a 27 MiB upload.
                assert request_s >= settings.request_timeout_s + 20
            else:
                assert path["value"] in app_routes, path
                if path["value"] == "/predict":
                    # Label Studio's budget answers first; Label Studio itself waits 100 s.
                    assert settings.ls_budget_s + 10 <= request_s < 100
    for internal in ("/metrics", "/livez", "/readyz", "/docs"):
        assert not any(
            internal == p["value"] or internal.startswith(p["value"].rstrip("/") + "/")
            for p in routed
        ), internal


def test_gateway_body_limit_is_just_above_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    """NGINX Gateway Fabric's limit must let the app's own cap answer (a JSON 413), so it sits
    above the cap the app really installs, by less than a few MiB."""
    objs = rendered("cpu-all-components")
    settings = load_settings(monkeypatch, settings_of(objs, "prelabel-settings"))
    # The keys file exists only in the pod; the body cap does not depend on it.
    app = create_app(settings.model_copy(update={"api_keys_file": None}))
    # A Middleware unpacks as (cls, args, kwargs), as Starlette itself reads it.
    (cap,) = [kw["max_bytes"] for cls, _, kw in app.user_middleware if cls is BodyLimitMiddleware]
    assert cap >= settings.max_upload_bytes * 4 // 3  # base64 of the largest file fits
    policy = find(objs, "ClientSettingsPolicy")
    limit = nginx_size(policy["spec"]["body"]["maxSize"])
    assert cap < limit <= cap + 4 * 2**20
    target = policy["spec"]["targetRef"]
    api_route = routes(objs)[target["name"]]
    assert target["kind"] == api_route["kind"] == "HTTPRoute"
    assert api_route["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/v1/"


def test_sticky_policy_hashes_the_sam_route() -> None:
    objs = rendered("gpu-all-components")
    policy = find(objs, "BackendTrafficPolicy")
    assert [t["name"] for t in policy["spec"]["targetRefs"]] == ["prelabel-api"]
    assert "prelabel-api" in routes(objs)
    lb = policy["spec"]["loadBalancer"]
    assert lb["type"] == "ConsistentHash"
    assert lb["consistentHash"] == {"type": "Header", "header": {"name": "X-Prelabel-Image"}}
