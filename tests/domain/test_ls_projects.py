"""Where a Label Studio origin and token may come from (LsOrigins) and the bounded registry."""

from __future__ import annotations

import pytest

from app.domain.labelstudio.projects import LsAccess, LsOrigins, LsProjects
from app.errors import ValidationFailed

OPERATOR = "http://ls.internal:8080"


def test_trust_and_tokens_follow_the_operators_settings() -> None:
    o = LsOrigins(OPERATOR, "op-token", ["https://ls.example.com"])
    assert o.access(None, None) == LsAccess(OPERATOR, "op-token", trusted=True)
    same = o.access("HTTP://LS.internal:8080/", None)  # the same origin, spelled otherwise
    assert same.trusted and same.token == "op-token"
    caller = o.access("http://127.0.0.1:9000", None)  # a host the caller names
    assert not caller.trusted and caller.token is None  # never the operator's token
    allowed = o.access("https://ls.example.com/", None)
    assert allowed.trusted and allowed.token is None  # trusted, yet not the default host
    # On the operator's host the operator's token wins (Label Studio's /setup token is a
    # legacy token, refused where legacy tokens are off).
    assert o.access(OPERATOR, "legacy-from-setup").token == "op-token"
    assert LsOrigins(OPERATOR).access(OPERATOR, "from-setup").token == "from-setup"
    own = o.access("http://elsewhere:1", "its-token")
    assert own.token == "its-token" and not own.trusted
    assert "its-token" not in repr(own)
    for bad in ("ftp://x", "http://user:pw@x", "http://2130706433/", "x"):
        with pytest.raises(ValidationFailed):
            o.access(bad, None)


def test_fingerprints_separate_hosts_and_tokens() -> None:
    prints = {
        LsAccess("http://a", "t").fingerprint,
        LsAccess("http://a", "u").fingerprint,
        LsAccess("http://b", "t").fingerprint,
        LsAccess("http://a", None).fingerprint,
    }
    assert len(prints) == 4


def test_the_registry_keeps_the_most_recently_used_projects() -> None:
    projects = LsProjects("m=1", max_projects=2)
    for p in ("1.1", "2.1"):
        projects.setup(p, "<View/>", None, None)
    assert projects.get("1.1") is not None  # used: now the most recent
    projects.setup("3.1", "<View/>", None, None)
    assert projects.get("2.1") is None and len(projects) == 2
    assert projects.by_number(1) is projects.get("1.1")
    changed = projects.with_schema(projects.get("3.1"), "3.1", "<View></View>")
    assert changed.model_version != projects.model_version("<View/>")
