"""API keys: who gets in where, in each accepted header style; roles; the keys CLI; the rate
limit on an injected clock."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.ratelimit import TokenBuckets
from app.cli.main import main as cli
from app.config import Settings
from app.domain.apikeys import KeyStore, Principal, hash_key, key_line, new_key
from app.main import create_app
from tests.conftest import metric, runtime_of

ALICE = "pl_alice-0123456789abcdefghijklmnopqrstuvwxyzABCD"  # a user key
ROOT = "pl_root-0123456789abcdefghijklmnopqrstuvwxyzABCDE"  # an admin key
LIGHT: dict[str, Any] = {"models": ["nanodet-g"], "default_sam": "", "default_ner": ""}


def keyed_settings(**extra: object) -> Settings:
    keys = [key_line(ALICE, "user", "alice"), key_line(ROOT, "admin", "root")]
    return Settings(**{**LIGHT, "api_keys": keys, **extra})


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed() -> Iterator[TestClient]:
    """Keys configured, the detector loaded (so a real detect can run behind auth)."""
    with TestClient(create_app(keyed_settings()), raise_server_exceptions=False) as c:
        yield c


def test_without_keys_every_route_is_open_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.api.auth"):
        app = create_app(Settings(**LIGHT))
    assert "unauthenticated" in caplog.text
    c = TestClient(app)
    r = c.get("/v1/models")
    assert r.status_code == 200 and "www-authenticate" not in r.headers
    assert c.get("/openapi.json").status_code == 200
    assert c.delete("/v1/sam/embeddings").status_code == 200  # admin routes too


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("pl_not-a-configured-key"),
        {"Authorization": "Token pl_not-a-configured-key"},
        basic("label-studio", "wrong-password"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Digest username=alice"},
        {"Authorization": "Bearer "},
        bearer(ALICE[:-1]),  # a prefix of a real key
        bearer(hash_key(ALICE)),  # its stored hash is not a key
    ],
)
def test_missing_or_wrong_credentials_get_401(keyed: TestClient, headers: dict[str, str]) -> None:
    r = keyed.get("/v1/models", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == 'Bearer realm="prelabel"'
    assert r.headers["x-request-id"]
    assert ALICE not in r.text


@pytest.mark.parametrize(
    "headers",
    [
        bearer(ALICE),
        {"Authorization": f"bearer {ALICE}"},  # the scheme is case-insensitive
        {"Authorization": f"Token {ALICE}"},  # Label Studio's style
        basic("any-user-name", ALICE),  # Label Studio's ML-backend basic auth: key as password
        basic(ALICE, ""),  # curl -u KEY:
    ],
)
def test_a_valid_key_in_each_accepted_style(keyed: TestClient, headers: dict[str, str]) -> None:
    r = keyed.get("/v1/models", headers=headers)
    assert r.status_code == 200, r.text
    assert [m["name"] for m in r.json()["models"]] == ["nanodet-g"]


def test_a_real_detect_behind_basic_auth(keyed: TestClient, astronaut_jpeg: bytes) -> None:
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
    assert keyed.post("/v1/detect", files=files).status_code == 401
    r = keyed.post("/v1/detect", files=files, headers=basic("ls", ALICE))
    assert r.status_code == 200, r.text
    assert "person" in {d["label"] for d in r.json()["detections"]}


def test_401_comes_before_the_body_is_read(keyed: TestClient) -> None:
    big = {"Content-Length": str(10**9), "Content-Type": "application/json"}
    r = keyed.post("/v1/detect", headers=big, content=b"{}")
    assert r.status_code == 401  # not 413: an anonymous caller learns nothing about limits


def test_probes_are_open_and_health_checks_credentials_that_are_sent(keyed: TestClient) -> None:
    assert keyed.get("/livez").status_code == 200
    assert keyed.get("/livez", headers=bearer("pl_wrong")).status_code == 200  # never checked
    assert keyed.get("/readyz").status_code == 200
    health = keyed.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "UP"
    assert keyed.get("/health", headers=basic("ls", ALICE)).status_code == 200
    # Label Studio validates a backend's basic-auth settings on /health: a wrong password must
    # answer 401 there, or Label Studio would accept it and fail later.
    assert keyed.get("/health", headers=basic("ls", "wrong")).status_code == 401


def test_label_studio_routes_need_a_key(keyed: TestClient) -> None:
    body = {"project": "1.1", "schema": "<View></View>"}
    assert keyed.post("/setup", json=body).status_code == 401
    assert keyed.post("/setup", json=body, headers=basic("ls", ALICE)).status_code == 200
    assert keyed.post("/webhook", json={"action": "X"}).status_code == 401


def test_metrics_open_by_default_and_closed_by_setting() -> None:
    assert TestClient(create_app(keyed_settings())).get("/metrics").status_code == 200
    closed = TestClient(create_app(keyed_settings(metrics_require_auth=True)))
    assert closed.get("/metrics").status_code == 401
    r = closed.get("/metrics", headers=bearer(ALICE))
    assert r.status_code == 200 and "prelabel_rejections_total" in r.text


def test_docs_need_a_key_and_ask_a_browser_for_basic_credentials(keyed: TestClient) -> None:
    for path in ("/docs", "/openapi.json"):
        r = keyed.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="prelabel"'
        assert keyed.get(path, headers=basic("me", ALICE)).status_code == 200


def test_admin_route_is_403_for_a_user_key_and_200_for_an_admin(keyed: TestClient) -> None:
    assert keyed.delete("/v1/sam/embeddings").status_code == 401
    r = keyed.delete("/v1/sam/embeddings", headers=bearer(ALICE))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = keyed.delete("/v1/sam/embeddings", headers=bearer(ROOT))
    assert r.status_code == 200 and r.json() == {"embeddings": 0, "masks": 0, "bytes_freed": 0}


def test_purge_drops_real_embeddings(client: TestClient, astronaut_jpeg: bytes) -> None:
    """On the shared app (auth off, so the admin route is open): embed, purge, re-embed."""
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
    assert client.post("/v1/sam/embed", files=files).status_code == 200
    r = client.delete("/v1/sam/embeddings")
    assert r.status_code == 200 and r.json()["embeddings"] >= 1
    assert r.json()["bytes_freed"] >= 256 * 64 * 64 * 4
    assert runtime_of(client).embeddings.bytes == 0
    again = client.post("/v1/sam/embed", files=files)
    assert again.status_code == 200 and again.json()["cached"] is False


def test_key_store_parsing_and_lookup(tmp_path: Path) -> None:
    a, b = new_key(), new_key()
    assert a != b and a.startswith("pl_") and len(a) == 46
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\n{key_line(a, 'user', 'ann')}  # ann's laptop\n")
    store = KeyStore.load(path, [key_line(b, "admin", "ops")])
    assert len(store) == 2
    assert store.lookup(a) == Principal("ann", "user")
    assert store.lookup(b) == Principal("ops", "admin")
    assert store.lookup(a + "x") is None and store.lookup("") is None
    bad_lines = {
        a: "plain key",
        f"{hash_key(a)} root ann": "role",
        f"{hash_key(a)} user": "expected",
        f"{hash_key(a)[:-1]} user ann": "64 lowercase hex",
        f"{hash_key(a)} user ann;rm": "name",
    }
    for line, problem in bad_lines.items():
        path.write_text(line + "\n")
        with pytest.raises(ValueError, match=problem) as e:
            KeyStore.load(path)
        assert a not in str(e.value) and hash_key(a) not in str(e.value)
    with pytest.raises(ValueError, match="twice"):
        KeyStore.load(None, [key_line(a, "user", "x"), key_line(a, "admin", "y")])


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [key_line(ALICE, "user", "alice"), key_line(ROOT, "admin", "root")]
    monkeypatch.setenv("PRELABEL_API_KEYS", ",".join(lines))
    store = KeyStore.load(None, Settings(**LIGHT).api_keys)
    assert store.lookup(ROOT) == Principal("root", "admin")


def test_keys_cli_output_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(["keys", "new", "--role", "admin", "--name", "ops"]) == 0
    key, line = capsys.readouterr().out.splitlines()
    assert line == f"{hash_key(key)} admin ops" and key not in line
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert cli(["keys", "hash", "--role", "admin", "--name", "ops"]) == 0
    assert capsys.readouterr().out.strip() == line
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(line + "\n")
    c = TestClient(create_app(Settings(**LIGHT, api_keys_file=keys_file)))
    assert c.get("/v1/models").status_code == 401
    assert c.delete("/v1/sam/embeddings", headers=bearer(key)).status_code == 200
    assert cli(["keys", "new", "--name", "not ok"]) == 1


def test_token_buckets_on_an_injected_clock() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert buckets.take("a") == pytest.approx(0.5)  # one token every 0.5 s
    assert buckets.take("b") == 0.0  # another key has its own bucket
    now[0] += 0.25
    assert buckets.take("a") == pytest.approx(0.25)
    now[0] += 0.25
    assert buckets.take("a") == 0.0
    now[0] += 60
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refills only up to the burst
    small = TokenBuckets(1.0, 1, clock=lambda: now[0], max_keys=2)
    for key in ("x", "y", "z"):
        small.take(key)
    assert len(small) == 2


def test_rate_limit_per_key_with_retry_after() -> None:
    app = create_app(keyed_settings(rate_limit_per_s=0.5, rate_limit_burst=2))
    now = [0.0]
    app.state.rate_limit.clock = lambda: now[0]
    c = TestClient(app)
    before = metric(c, "prelabel_rejections_total", reason="rate_limited")
    assert [c.get("/v1/models", headers=bearer(ALICE)).status_code for _ in range(2)] == [200, 200]
    r = c.get("/v1/models", headers=bearer(ALICE))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert r.headers["retry-after"] == "2"  # 1 token at 0.5/s
    assert c.get("/v1/models", headers=bearer(ROOT)).status_code == 200  # root's own bucket
    assert c.get("/livez").status_code == 200 and c.get("/metrics").status_code == 200
    now[0] += 1.0
    assert c.get("/v1/models", headers=bearer(ALICE)).headers["retry-after"] == "1"
    now[0] += 1.0
    assert c.get("/v1/models", headers=bearer(ALICE)).status_code == 200
    assert metric(c, "prelabel_rejections_total", reason="rate_limited") == before + 2


def test_rate_limit_per_client_address_when_auth_is_off() -> None:
    app = create_app(Settings(**LIGHT, rate_limit_per_s=1.0))
    now = [0.0]
    app.state.rate_limit.clock = lambda: now[0]
    c = TestClient(app)
    assert c.get("/v1/models").status_code == 200  # burst defaults to one second's worth
    assert c.get("/v1/models").status_code == 429
    now[0] += 1.0
    assert c.get("/v1/models").status_code == 200
