"""Where the service's state lives in each rendering (docs/deploying.md, "State"): the
replicated overlays read PRELABEL_STATE_DSN from the Secret prelabel-state (fail closed, never
in the ConfigMap) and may reach PostgreSQL; overlays/single keeps PRELABEL_STATE_DB on a
ReadWriteOnce claim, one replica, replaced with Recreate, no autoscaler."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from app.config import Settings
from tests.deploy.manifests import (
    K8S,
    REPLICATED,
    Obj,
    container,
    find,
    load_settings,
    pod_spec,
    rendered,
    settings_of,
)

TEMPLATE = K8S / "base/state-secret.template.yaml"


def _env(deployment: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


@pytest.mark.parametrize("name", REPLICATED)
def test_replicas_share_the_dsn_from_the_secret(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = rendered(name)
    deployment = find(objs, "Deployment")
    ref = _env(deployment)["PRELABEL_STATE_DSN"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is False  # no silent per-pod in-memory state
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    assert template["metadata"]["name"] == ref["name"]
    dsn = template["stringData"][ref["key"]]
    # The placeholder is a DSN libpq parses, and the app takes it as its state store.
    assert conninfo_to_dict(dsn)["dbname"] == "prelabel"
    config = settings_of(objs, "prelabel-settings")
    assert not {"PRELABEL_STATE_DSN", "PRELABEL_STATE_DB"} & set(config)
    settings = load_settings(monkeypatch, {**config, "PRELABEL_STATE_DSN": dsn})
    assert settings.state_dsn is not None and settings.state_dsn.get_secret_value() == dsn
    # Every variable the container sets is a setting (Settings ignores unknown ones).
    assert set(_env(deployment)) <= {f"PRELABEL_{f.upper()}" for f in Settings.model_fields}
    # The network policy lets the pods reach PostgreSQL's port.
    egress = find(objs, "NetworkPolicy", "prelabel")["spec"]["egress"]
    ports = {(p["protocol"], p["port"]) for rule in egress for p in rule["ports"]}
    assert ("TCP", 5432) in ports
    assert find(objs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2


def test_single_keeps_sqlite_on_a_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = rendered("single")
    deployment = find(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    # The old pod lets go of the claim before the new one opens the SQLite file.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    assert "PRELABEL_STATE_DSN" not in _env(deployment)
    settings = load_settings(monkeypatch, settings_of(objs, "prelabel-settings"))
    assert settings.state_dsn is None and settings.state_db is not None
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    (mount,) = [
        m
        for m in container(deployment)["volumeMounts"]
        if settings.state_db.is_relative_to(Path(m["mountPath"]))
    ]
    assert not mount.get("readOnly")
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = find(objs, "PersistentVolumeClaim", claim)
    assert pvc["metadata"]["name"] == claim
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
