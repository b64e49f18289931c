"""What the rendered manifests promise, checked against the app itself: settings that exist and
parse, probes on real routes, a grace period that covers the drain, hardened pods that can run
on a read-only root, selectors that select, routes that reach the Service with timeouts longer
than the app's own deadlines, a gateway body limit just above the app's, and the autoscaler's
custom metric built from a gauge the app really exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Gauge

from app.api.middleware import BodyLimitMiddleware
from app.config import Settings
from app.inference.batcher import Lane
from app.inference.metrics import Metrics
from app.main import create_app
from tests.deploy import image
from tests.deploy.manifests import K8S, RENDERINGS, Obj, container, find, pod_spec, rendered

SERVICE = ("cpu", "gpu", "cpu-all-components", "gpu-all-components")
WORKLOADS = [(n, k) for n in RENDERINGS for k in ("Deployment", "Job")]


def workloads() -> list[tuple[str, Obj]]:
    return [
        (f"{name}/{o['metadata']['name']}", o)
        for name in RENDERINGS
        for o in rendered(name)
        if o["kind"] in ("Deployment", "Job")
    ]


def settings_of(objs: tuple[Obj, ...], configmap: str) -> dict[str, str]:
    data: dict[str, str] = find(objs, "ConfigMap", configmap)["data"]
    return data


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    import os

    for key in [k for k in os.environ if k.startswith("PRELABEL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def seconds(duration: str) -> float:
    """A Gateway API / Go duration ("95s", "1m30s", "500ms") in seconds."""
    parts = re.findall(r"(\d+)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * scale[u] for n, u in parts)


def nginx_size(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]


@pytest.fixture(scope="module")
def app_routes() -> set[str]:
    """The app's routes, from its OpenAPI document (probes and /metrics included)."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return set(app.openapi()["paths"])


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
    hpa = find(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # One pod may be disrupted at a time, so the autoscaler's floor keeps one serving.
    assert find(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_queue_depth_metric_is_the_apps_gauge() -> None:
    """The adapter rule reads a gauge the app exports, filtered on a lane label value the
    batcher really uses, and the HPA asks for the name the rule serves."""
    rule_file = K8S / "components/queue-depth-hpa/prometheus-adapter-rule.yaml"
    (rule,) = yaml.safe_load(rule_file.read_text())["rules"]
    source = re.fullmatch(r"\^(\w+)\$", rule["name"]["matches"]).group(1)  # type: ignore[union-attr]
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


# Gateway -------------------------------------------------------------------------------------


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
    (cap,) = [m.kwargs["max_bytes"] for m in app.user_middleware if m.cls is BodyLimitMiddleware]
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
