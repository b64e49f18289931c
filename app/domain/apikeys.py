"""API keys: generation, hashing, the key store and the constant-time lookup (framework-free).

A key is `pl_` + 43 URL-safe characters from `secrets.token_urlsafe(32)` (256 random bits).
Only its SHA-256 is stored, as one line per key:

    <sha256 hex of the key> <role> <name>        # role: user | admin; name: [A-Za-z0-9._@-]+

in the file `PRELABEL_API_KEYS_FILE` (`#` starts a comment) and/or, comma-separated, in
`PRELABEL_API_KEYS`. Plain keys are never stored or accepted in either place.

Why a plain SHA-256 and not bcrypt/argon2: those are for human passwords, which are guessable,
and they are deliberately slow (tens of ms of CPU). These keys are machine-made with 256 bits of
entropy, so there is nothing to brute-force and a fast hash loses nothing (GitHub and Stripe
store their tokens the same way); a slow hash would instead add its cost to every request of a
latency-sensitive service (a SAM click is ~50 ms end to end).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
KEY_PREFIX = "pl_"
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as: the key's name (what logs and job ownership show) and
    its role. `request.state.principal` holds one (None when authentication is off)."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class _Entry:
    digest: bytes  # 32 bytes, sha256 of the key
    principal: Principal


def new_key() -> str:
    """A fresh random key (shown once to its owner; only `hash_key(key)` is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Lowercase hex SHA-256 of the key's UTF-8 bytes: the stored form."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_line(key: str, role: Role, name: str) -> str:
    """The line to add to the keys file (or to PRELABEL_API_KEYS) for `key`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not _NAME.fullmatch(name):
        raise ValueError("name must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
    return f"{hash_key(key)} {role} {name}"


def parse_line(line: str, where: str) -> _Entry | None:
    """One stored line -> entry (None for blank lines and comments). `where` names the line in
    errors, which never quote it."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if parts[0].startswith(KEY_PREFIX):
        raise ValueError(f"{where}: looks like a plain key; store its hash (prelabel keys hash)")
    if len(parts) != 3:
        raise ValueError(f"{where}: expected '<sha256 hex> <role> <name>'")
    digest, role, name = parts
    if not _HEX.fullmatch(digest):
        raise ValueError(f"{where}: the first field must be 64 lowercase hex digits (sha256)")
    if role not in ROLES:
        raise ValueError(f"{where}: role must be 'user' or 'admin'")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: name must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
    return _Entry(bytes.fromhex(digest), Principal(name, role))


class KeyStore:
    """The configured keys. Empty means authentication is off."""

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self._entries = tuple(entries)
        digests = [e.digest for e in self._entries]
        if len(set(digests)) != len(digests):
            raise ValueError("the same API key hash is configured twice")

    @classmethod
    def load(cls, path: Path | None, lines: Iterable[str] = ()) -> KeyStore:
        """Keys from the file at `path` (if given) and from `lines` (PRELABEL_API_KEYS).
        Raises `ValueError` (with the line number, never its content) on a malformed line and
        `OSError` when the file cannot be read."""
        entries: list[_Entry] = []
        if path is not None:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                entry = parse_line(line, f"{path}:{n}")
                if entry is not None:
                    entries.append(entry)
        for n, line in enumerate(lines, 1):
            entry = parse_line(line, f"PRELABEL_API_KEYS entry {n}")
            if entry is not None:
                entries.append(entry)
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> Principal | None:
        """The principal whose stored hash matches `key`, or None.

        The presented key is hashed once, then compared with every stored digest using
        `hmac.compare_digest`, without stopping at the first match, so the time taken depends
        only on the number of keys, never on which key matched or how much of a digest did.
        (Even a dict keyed by digest would leak nothing usable, since an attacker cannot steer
        the digest of their guess, but with tens of keys the linear scan costs microseconds and
        leaves nothing to argue about.)"""
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest) and found is None:
                found = entry.principal
        return found
