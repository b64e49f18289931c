"""The Dockerfile, parsed (dockerfile-parse): instructions grouped by build stage."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache

from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]

    def env(self) -> dict[str, str]:
        """ENV of this stage alone (`KEY=value` pairs, as this Dockerfile writes them)."""
        out: dict[str, str] = {}
        for value in self.values("ENV"):
            for pair in shlex.split(value):
                key, _, val = pair.partition("=")
                out[key] = val
        return out


@cache
def global_args() -> dict[str, str]:
    """The build arguments declared before the first FROM, with their defaults."""
    out: dict[str, str] = {}
    for ins in DockerfileParser(path=str(DOCKERFILE)).structure:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG":
            key, _, default = ins["value"].partition("=")
            out[key] = default
    return out


def resolve(base: str, build_args: dict[str, str] | None = None) -> str:
    """A FROM value with the global build arguments substituted (defaults, then build_args)."""
    values = {**global_args(), **(build_args or {})}
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], base)


@cache
def stages() -> dict[str, Stage]:
    """Stages by name, in file order (the last one is what a plain `docker build` makes)."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in parser.structure:
        instruction, value = ins["instruction"], ins["value"]
        if instruction == "FROM":
            base, _, name = value.partition(" AS ")
            current = out[name.strip()] = Stage(name.strip(), base.strip())
        elif current is not None and instruction != "COMMENT":
            current.instructions.append((instruction, value))
    return out


def lineage(name: str, build_args: dict[str, str] | None = None) -> list[Stage]:
    """`name`'s stage and the stages it is built FROM, nearest first (FROM values resolved
    with the global build arguments' defaults, overridden by build_args)."""
    chain = []
    all_stages = stages()
    while name in all_stages:
        chain.append(all_stages[name])
        name = resolve(all_stages[name].base, build_args)
    return chain


def env_of(target: str) -> dict[str, str]:
    """The ENV a container of `target` starts with (inherited stages first)."""
    env: dict[str, str] = {}
    for stage in reversed(lineage(target)):
        env.update(stage.env())
    return env


def exec_form(value: str) -> list[str]:
    """An exec-form instruction value (JSON array), e.g. ENTRYPOINT or HEALTHCHECK's CMD."""
    start = value.index("[")
    parsed: list[str] = json.loads(value[start:])
    return parsed


def user_ids(target: str) -> tuple[int, int]:
    for stage in lineage(target):
        if users := stage.values("USER"):
            uid, _, gid = users[-1].partition(":")
            return int(uid), int(gid or uid)
    raise AssertionError(f"no USER in {target}")
