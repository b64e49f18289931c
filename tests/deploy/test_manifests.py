"""What the rendered manifests promise, checked against the app itself: settings that exist and
parse, probes on real routes, a grace period that covers the drain, hardened pods that can run
on a read-only root, the API-key Secret where the app reads its keys, selectors that select, and
the autoscaler's custom metric built from a gauge the app really exports (the routes:
test_gateway.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import Gauge

from app.config import Settings
from app.inference.batcher import Lane
from app.inference.metrics import Metrics
from tests.deploy import image
from tests.deploy.manifests import (
    K8S,
    RENDERINGS,
    SERVICE,
    Obj,
    container,
    find,
    load_settings,
    pod_spec,
    rendered,
    settings_of,
)


def workloads() -> list[tuple[str, Obj]]:
    return [
        (f"{name}/{o['metadata']['name']}", o)
        for name in RENDERINGS
        for o in rendered(name)
        if o["kind"] in ("Deployment", "Job")
    ]


# Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "configmap"),
    [(n, "prelabel-settings") for n in SERVICE]
    + [("batch-annotate", "prelabel-batch"), ("batch-merge", "prelabel-batch")],
)
def test_configmap_keys_are_settings_and_parse(
    name: str, configmap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings ignores unknown variables, so a misspelt or stale key would be silently
    dropped: every key must name a field, and every value must parse."""
    env = settings_of(rendered(name), configmap)
    fields = {f"PRELABEL_{f.upper()}" for f in Settings.model_fields}
    unknown = sorted(set(env) - fields)
    assert not unknown, f"not Prelabel settings (app/config.py): {unknown}"
    settings = load_settings(monkeypatch, env)
    assert settings.provider == env["PRELABEL_PROVIDER"]


def test_overlays_choose_provider_and_gpu() -> None:
    for name, provider in (("cpu", "cpu"), ("gpu", "require-gpu")):
        objs = rendered(name)
        assert settings_of(objs, "prelabel-settings")["PRELABEL_PROVIDER"] == provider
        deployment = find(objs, "Deployment")
        resources = container(deployment)["resources"]
        gpus = resources["limits"].get("nvidia.com/gpu")
        assert gpus == ("1" if name == "gpu" else None)
        assert container(deployment)["image"].endswith(f"-{name}")
    spec = pod_spec(find(rendered("gpu"), "Deployment"))
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert spec["nodeSelector"]


# Probes, ports, shutdown ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE)
def test_probes_use_real_routes_and_port(name: str, app_routes: set[str]) -> None:
    objs = rendered(name)
    c = container(find(objs, "Deployment"))
    port = int(settings_of(objs, "prelabel-settings")["PRELABEL_PORT"])
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": port}
    assert int(image.env_of("runtime")["PRELABEL_PORT"]) == port
    paths = {
        k: c[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {
        "startupProbe": "/livez",
        "readinessProbe": "/readyz",
        "livenessProbe": "/livez",
    }
    assert set(paths.values()) <= app_routes
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[key]["httpGet"]["port"] == "http"
    # Models load before the port opens: the startup probe must outlast a slow load.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("name", SERVICE)
def test_grace_period_covers_prestop_and_drain(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = rendered(name)
    deployment = find(objs, "Deployment")
    settings = load_settings(monkeypatch, settings_of(objs, "prelabel-settings"))
    pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep_s = float(pre_stop[1])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # The process exits within shutdown_grace_s of SIGTERM (its watchdog); SIGTERM comes
    # after preStop, and Kubernetes counts both against the grace period.
    assert grace >= sleep_s + settings.shutdown_grace_s + 1
    # In-flight requests (bounded by the scheduler deadline) finish inside the drain, which
    # reserves up to 9 s for stopping the batchers and exiting (app/cli/serve.py).
    assert settings.shutdown_grace_s - 9 >= settings.request_timeout_s


# Pods: hardened, read-only root, resources ---------------------------------------------------


@pytest.mark.parametrize(("label", "obj"), workloads(), ids=[w[0] for w in workloads()])
def test_pods_are_hardened(label: str, obj: Obj) -> None:
    spec = pod_spec(obj)
    uid, gid = image.user_ids("runtime")
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert (pod_sc["runAsUser"], pod_sc["runAsGroup"], pod_sc["fsGroup"]) == (uid, gid, gid)
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        res = c["resources"]
        for kind in ("cpu", "memory"):
            assert res["requests"][kind] == res["limits"][kind], (label, kind)


@pytest.mark.parametrize(("label", "obj"), workloads(), ids=[w[0] for w in workloads()])
def test_writable_paths_are_volumes(label: str, obj: Obj) -> None:
    """With a read-only root, the image's HOME, TMPDIR and cache dir must be a volume, and
    every writable mount must be an emptyDir or a claim."""
    env = image.env_of("runtime")
    spec = pod_spec(obj)
    volumes = {v["name"]: v for v in spec["volumes"]}
    (c,) = spec["containers"]
    writable = {
        m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"] if not m.get("readOnly")
    }
    for path in (env["HOME"], env["TMPDIR"], env["XDG_CACHE_HOME"]):
        assert any(path == m or path.startswith(m + "/") for m in writable), (label, path)
    for mount, volume in writable.items():
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume, (label, mount)


@pytest.mark.parametrize("name", SERVICE)
def test_api_keys_secret_is_the_keys_file(name: str) -> None:
    objs = rendered(name)
    spec = pod_spec(find(objs, "Deployment"))
    keys_file = Path(settings_of(objs, "prelabel-settings")["PRELABEL_API_KEYS_FILE"])
    (mount,) = [
        m for m in container(find(objs, "Deployment"))["volumeMounts"] if m["name"] == "api-keys"
    ]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == "api-keys"]
    items = {i["key"]: i["path"] for i in volume["secret"]["items"]}
    assert Path(mount["mountPath"]) / items["api-keys"] == keys_file
    assert volume["secret"].get("optional") is not True  # fail closed
    template = yaml.safe_load((K8S / "base/api-keys-secret.template.yaml").read_text())
    assert template["metadata"]["name"] == volume["secret"]["secretName"]
    assert "api-keys" in template["stringData"]


# Selectors, autoscaling ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE)
def test_selectors_select_the_pods(name: str) -> None:
    objs = rendered(name)
    deployment = find(objs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= labels.items()

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    service = find(objs, "Service")
    assert selects(service["spec"]["selector"])
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}
    assert selects(find(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(find(objs, "NetworkPolicy", "prelabel")["spec"]["podSelector"]["matchLabels"])
    if name == "single":  # one replica, no autoscaler (test_state.py)
        return
    hpa = find(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # One pod may be disrupted at a time, so the autoscaler's floor keeps one serving.
    assert find(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_queue_depth_metric_is_the_apps_gauge() -> None:
    """The adapter rule reads a gauge the app exports, filtered on a lane label value the
    batcher really uses, and the HPA asks for the name the rule serves."""
    rule_file = K8S / "components/queue-depth-hpa/prometheus-adapter-rule.yaml"
    (rule,) = yaml.safe_load(rule_file.read_text())["rules"]
    matched = re.fullmatch(r"\^(\w+)\$", rule["name"]["matches"])
    assert matched, rule["name"]
    source = matched.group(1)
    assert rule["seriesQuery"].startswith(source + "{")
    gauge = Metrics().queue_depth
    assert isinstance(gauge, Gauge)
    assert gauge._name == source
    assert set(gauge._labelnames) == {"model", "lane"}
    assert f'lane="{Lane.INTERACTIVE.name.lower()}"' in rule["metricsQuery"]
    for name in ("cpu-all-components", "gpu-all-components"):
        metrics = find(rendered(name), "HorizontalPodAutoscaler")["spec"]["metrics"]
        pods = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
        assert pods == [rule["name"]["as"]]
        assert any(m["type"] == "Resource" for m in metrics)
    plain = find(rendered("gpu"), "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["type"] for m in plain] == ["Resource"]
