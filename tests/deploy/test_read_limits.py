"""Read limits in the deployment: the pods run `prelabel serve` with the settings that bound
how long a client may take to send a request, and the Envoy Gateway policy in k8s/gateway/
bounds it at the gateway too, longer than the app's own limits (so a slow client gets the app's
JSON 408) and attached to the Gateway the routes name."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.manifests import K8S, SERVICE, load_settings, rendered, settings_of
from tests.deploy.test_gateway import routes, seconds

POLICY = K8S / "gateway" / "envoy-client-timeouts.yaml"


@pytest.mark.parametrize("name", SERVICE)
def test_the_gateway_waits_longer_for_a_request_than_the_app(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = rendered(name)
    settings = load_settings(monkeypatch, settings_of(objs, "prelabel-settings"))
    # Stated in the ConfigMap, not left to defaults, so an operator sees them.
    env = settings_of(objs, "prelabel-settings")
    for key in (
        "PRELABEL_HEADER_TIMEOUT_S",
        "PRELABEL_BODY_TIMEOUT_S",
        "PRELABEL_BODY_IDLE_TIMEOUT_S",
    ):
        assert key in env
    assert settings.body_idle_timeout_s <= settings.body_timeout_s
    (policy,) = yaml.safe_load_all(POLICY.read_text())
    assert (policy["apiVersion"], policy["kind"]) == (
        "gateway.envoyproxy.io/v1alpha1",
        "ClientTrafficPolicy",
    )
    http = policy["spec"]["timeout"]["http"]
    received = seconds(http["requestReceivedTimeout"])
    assert settings.header_timeout_s + settings.body_timeout_s < received <= 120
    assert seconds(http["idleTimeout"]) >= 5  # longer than uvicorn's keep-alive (5 s)
    # Attached to the Gateway the app's routes use (so it must live in that namespace).
    (target,) = policy["spec"]["targetRefs"]
    gateways = {
        (ref["name"], ref.get("namespace"))
        for route in routes(objs).values()
        for ref in route["spec"]["parentRefs"]
    }
    assert target["kind"] == "Gateway" and target["group"] == "gateway.networking.k8s.io"
    assert {name for name, _ in gateways} == {target["name"]}
    assert "namespace" not in policy["metadata"]  # `kubectl apply -n <the Gateway's>`


def test_the_policy_is_not_in_a_kustomization() -> None:
    """Applied on its own, in the Gateway's namespace: the app's kustomizations set the
    `prelabel` namespace on everything they hold, where a Gateway policy would attach to nothing."""
    for name in SERVICE:
        assert not any(o["kind"] == "ClientTrafficPolicy" for o in rendered(name))
