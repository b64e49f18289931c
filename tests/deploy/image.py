"""The Dockerfile, parsed (dockerfile-parse): instructions grouped by build stage."""

from __future__ import annotations

import json
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


def lineage(name: str) -> list[Stage]:
    """`name`'s stage and the stages it is built FROM, nearest first."""
    chain = []
    all_stages = stages()
    while name in all_stages:
        chain.append(all_stages[name])
        name = all_stages[name].base
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
