"""Every kustomization under k8s/ renders, and every rendered object validates against the
Kubernetes JSON schemas bundled in kubernetes-validate (offline, strict: unknown fields are
errors), for the oldest Kubernetes these manifests target and the newest schemas bundled.

kubernetes-validate has schemas for the built-in kinds only. The custom resources (Gateway API's
HTTPRoute, the gateways' policies, the Prometheus Operator's PodMonitor) are listed in
`NO_SCHEMA` and checked field by field in test_manifests.py instead.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.manifests import RENDERINGS, Obj, find, rendered

# backoffLimitPerIndex (GA 1.33) is the newest field used.
MIN_KUBERNETES = "1.33"
VERSIONS = (MIN_KUBERNETES, kubernetes_validate.utils.latest_version())

NO_SCHEMA = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.nginx.org/v1alpha1", "ClientSettingsPolicy"),
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


def _key(obj: Obj) -> tuple[str, str]:
    return obj["apiVersion"], obj["kind"]


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_renders(name: str) -> None:
    kinds = {o["kind"] for o in rendered(name)}
    if name.startswith("batch-"):
        assert {"Job", "ConfigMap", "NetworkPolicy"} <= kinds
    else:
        expected = {
            "Deployment",
            "Service",
            "ServiceAccount",
            "ConfigMap",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "HTTPRoute",
        }
        assert expected <= kinds
        # One replica on a ReadWriteOnce claim: no autoscaler (tests/deploy/test_state.py).
        assert ("HorizontalPodAutoscaler" in kinds) == (name != "single")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", list(RENDERINGS))
def test_every_object_validates(name: str, version: str) -> None:
    checked = 0
    for obj in rendered(name):
        if _key(obj) in NO_SCHEMA:
            # Really without a schema: when kubernetes-validate gains one, validate it.
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 3


def test_no_schema_list_is_exact() -> None:
    """Every kind skipped is one the renderings really contain (no stale entries)."""
    seen = {_key(o) for name in RENDERINGS for o in rendered(name)}
    assert seen >= NO_SCHEMA


def test_validation_catches_mistakes() -> None:
    """Negative controls: the validator rejects a wrong type and an unknown (misspelt) field in
    the real Deployment, so a pass above means something."""
    deployment = find(rendered("gpu"), "Deployment")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    typo = copy.deepcopy(deployment)
    probe = typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["periodSecond"] = probe.pop("periodSeconds")
    for bad in (wrong_type, typo):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, MIN_KUBERNETES, strict=True)
