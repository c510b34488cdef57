"""A game day's suite: which experiments run, in which order, and how long each may take.

A suite file (``chaos/gameday.yaml`` by default) names experiment files relative to itself::

    name: sandbox game day
    experiments:
      - experiments/rolling-under-load.json
      - {path: experiments/kill-mid-rollout.json, timeout_s: 600, vars: {target_release: v2}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cautious.config import Config
from cautious.exceptions import ConfigError
from cautious.inputs import (
    MAX_DOCUMENT_BYTES,
    clip,
    invalid_value,
    load_json,
    load_yaml,
    read_text,
    shorten,
)

__all__ = [
    "DEFAULT_SUITE",
    "DEFAULT_TIMEOUT_S",
    "Suite",
    "SuiteEntry",
    "check_experiment",
    "load_suite",
    "resolve_experiment",
]

DEFAULT_SUITE = Path("chaos") / "gameday.yaml"
DEFAULT_TIMEOUT_S = 900.0
_MAX_SUITE_BYTES = 1024 * 1024


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: str
    name: str | None = None
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=7_200, strict=True)
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=256)


class _SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "game day"
    description: str = ""
    experiments: list[_Entry | str] = Field(min_length=1, max_length=1_000)


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
    """Read a suite file; experiment paths are relative to it, and each must hold an
    experiment. Bad input is a ConfigError, raised before anything runs or is written."""
    shown = clip(str(path), 80)
    raw = load_yaml(read_text(path, "the game-day suite", _MAX_SUITE_BYTES), shown)
    try:
        suite = _SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{shown}: {invalid_value(exc.errors()[0])}") from None
    entries = []
    for item in suite.experiments:
        entry = _Entry(path=item) if isinstance(item, str) else item
        experiment = (path.parent / entry.path).resolve()
        if not os.path.lexists(experiment):
            raise ConfigError(
                f"{shown}: experiment {shorten(entry.path)} does not exist "
                f"({clip(str(experiment), 80)})"
            )
        check_experiment(experiment)
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
        if os.path.lexists(candidate):
            check_experiment(candidate)
            return candidate.resolve()
    raise ConfigError(
        f"no experiment file {shorten(text)} (looked in ., {clip(str(config.root), 60)}/chaos/"
        "experiments)"
    )


def check_experiment(path: Path) -> None:
    """Refuse a file that is not a Chaos Toolkit experiment (JSON or YAML with a title, a
    description and a method), before a report folder is made for it."""
    shown = clip(str(path), 80)
    text = read_text(path, "the experiment", MAX_DOCUMENT_BYTES)
    document = load_json(text, shown) if path.suffix == ".json" else load_yaml(text, shown)
    if not isinstance(document, dict):
        raise ConfigError(f"{shown}: not a Chaos Toolkit experiment (the file is not an object)")
    for key, kind in (("title", str), ("description", str), ("method", list)):
        if not isinstance(document.get(key), kind) or not document[key]:
            raise ConfigError(
                f"{shown}: not a Chaos Toolkit experiment: {key!r} = "
                f"{shorten(document.get(key))} (an experiment needs a title, a description "
                "and a non-empty method)"
            )
