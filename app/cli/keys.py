"""`prelabel keys new --role user --name alice` and `prelabel keys hash --role R --name N`.

`new` makes a random key and prints it once, on stdout's first line, then the line to add to
`PRELABEL_API_KEYS_FILE` (or to `PRELABEL_API_KEYS`); only that hashed line is ever stored.
`hash` reads a key from stdin (one line) and prints its line, for a key made elsewhere (it must
be as random as `new`'s: the stored hash is a plain SHA-256, see app/domain/apikeys.py).
"""

from __future__ import annotations

import argparse
import sys

from app.domain.apikeys import ROLES, key_line, new_key


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="make API keys (stored hashed)")
    ksub = keys.add_subparsers(dest="keys_action", required=True)
    for name, text in (
        ("new", "make a key: prints the key once, then its line for the keys file"),
        ("hash", "print the keys-file line of a key read from stdin"),
    ):
        p = ksub.add_parser(name, help=text)
        p.add_argument("--role", choices=ROLES, default="user")
        p.add_argument("--name", required=True, help="who holds it: A-Z a-z 0-9 . _ @ -")


def run(args: argparse.Namespace) -> int:
    if args.keys_action == "new":
        key = new_key()
    else:
        key = sys.stdin.readline().strip()
        if not key:
            print("error: no key on stdin", file=sys.stderr)
            return 1
    try:
        line = key_line(key, args.role, args.name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.keys_action == "new":
        print(key)
        print(
            f"# above: {args.name}'s key, shown only now; below: the line for the keys file",
            file=sys.stderr,
        )
    print(line)
    return 0
