"""A game day's suite: which experiments run, in which order, and how long each may take.

A suite file (``chaos/gameday.yaml`` by default) names experiment files relative to itself::

    name: sandbox game day
    experiments:
      - experiments/rolling-under-load.json
      - {path: experiments/kill-mid-rollout.json, timeout_s: 600, vars: {target_release: v2}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cautious.config import Config
from cautious.exceptions import ConfigError

__all__ = [
    "DEFAULT_SUITE",
    "DEFAULT_TIMEOUT_S",
    "Suite",
    "SuiteEntry",
    "load_suite",
    "resolve_experiment",
]

DEFAULT_SUITE = Path("chaos") / "gameday.yaml"
DEFAULT_TIMEOUT_S = 900.0


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    name: str | None = None
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=7_200)
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)


class _SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "game day"
    description: str = ""
    experiments: list[_Entry | str] = Field(min_length=1)


@dataclass(frozen=True)
class SuiteEntry:
    """One experiment of a game day, and how long it may take."""

    path: Path
    name: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """The experiments of a game day, in order."""

    name: str
    entries: tuple[SuiteEntry, ...]
    path: Path | None = None


def load_suite(path: Path) -> Suite:
    """Read a suite file; experiment paths are relative to it. Bad input is a ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the game-day suite {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        suite = _SuiteFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    entries = []
    for item in suite.experiments:
        entry = _Entry(path=item) if isinstance(item, str) else item
        experiment = (path.parent / entry.path).resolve()
        if not experiment.is_file():
            raise ConfigError(f"{path}: experiment {entry.path} does not exist ({experiment})")
        entries.append(
            SuiteEntry(
                path=experiment,
                name=entry.name or experiment.stem,
                timeout_s=entry.timeout_s,
                vars={key: str(value) for key, value in entry.vars.items()},
            )
        )
    return Suite(name=suite.name, entries=tuple(entries), path=path.resolve())


def resolve_experiment(text: str, config: Config) -> Path:
    """An experiment file: as given, relative to the config's folder, or a bare name under
    ``chaos/experiments`` (``kill-mid-rollout``)."""
    candidates = [Path(text), config.root / text]
    if "/" not in text and not text.endswith((".json", ".yaml", ".yml")):
        candidates.append(config.root / "chaos" / "experiments" / f"{text}.json")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"no experiment file {text!r} (looked in ., {config.root}/chaos/experiments)")
