"""The Invoke tasks: the command line contract of DESIGN.md.

Tasks stay thin: parse flags, load the configuration (flags on top), call the library, print.
Every deliberate error (``CautiousError``) becomes one line on stderr and its exit code —
2 for bad input, 1 for a failure — never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.console import Console
from rich.table import Table

from pipeline.config import Config, load_config
from pipeline.exceptions import CautiousError, ConfigError
from pipeline.sandbox import Sandbox, SandboxStatus

__all__ = ["ns"]

P = ParamSpec("P")
R = TypeVar("R")

console = Console(stderr=True, highlight=False)
PYTEST_NO_TESTS = 5


def _clean_errors(body: Callable[P, R]) -> Callable[P, R]:
    """Turn a CautiousError into one line on stderr and its exit code."""

    @functools.wraps(body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except CautiousError as exc:
            raise Exit(f"cautious: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("cautious: interrupted", code=130) from None

    return wrapper


def _whole_number(flag: str, value: str | int | None) -> int | None:
    """Flags arrive as text; a non-number is bad input (exit 2), not a parser crash."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{flag} takes a whole number, not {value!r}") from None


def _load(config: str | None, **overrides: Any) -> Config:
    return load_config(config, overrides)


def _say(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Show a spinner while a stage runs, then its duration."""
    started = time.monotonic()
    with console.status(f"{name} …"):
        yield
    console.print(f"[green]✓[/green] {name} [dim]({time.monotonic() - started:.1f} s)[/dim]")


# -- configuration -----------------------------------------------------------------------------


@task(help={"config": "path to cautious.yaml (default: $CAUTIOUS_CONFIG or ./cautious.yaml)"})
@_clean_errors
def config(c: Context, config: str | None = None) -> None:
    """Print the effective configuration (file, then flags) as YAML."""
    import yaml

    effective = _load(config).model_dump(mode="json")
    print(yaml.safe_dump(effective, sort_keys=False), end="")


# -- build ---------------------------------------------------------------------------------------


@task(
    help={
        "release": "a release declared in cautious.yaml (default: the working tree, by git sha)",
        "config": "path to cautious.yaml",
    }
)
@_clean_errors
def build(c: Context, release: str | None = None, config: str | None = None) -> None:
    """Build a release image; print its label and digest."""
    from pipeline.release import build_release, git_revision

    cfg = _load(config)
    sandbox = Sandbox(cfg, say=_say)
    with _stage(f"build {release or 'working tree'}"):
        if release is not None:
            built = sandbox.release(release, rebuild=True)
        else:
            label = f"git-{git_revision(cfg.root) or 'unknown'}"
            client = sandbox.backend.client  # type: ignore[attr-defined]
            built = build_release(client, cfg, label, env={}, say=_say)
    print(f"{built.label} {built.digest}")


# -- sandbox -------------------------------------------------------------------------------------


@task(
    help={
        "instances": "how many instances (default: cluster.instances)",
        "release": "release for new instances (default: the running one, else the first declared)",
        "config": "path to cautious.yaml",
    }
)
@_clean_errors
def up(
    c: Context, instances: str | None = None, release: str | None = None, config: str | None = None
) -> None:
    """Start the sandbox cluster (idempotent): HAProxy plus N instances of a release."""
    count = _whole_number("--instances", instances)
    cfg = _load(config, **{"cluster.instances": count})
    sandbox = Sandbox(cfg, say=_say)
    with _stage(f"sandbox {cfg.cluster.name} up ({cfg.cluster.instances} instances)"):
        status = sandbox.up(cfg.cluster.instances, release)
    _print_status(status)


@task(help={"json": "machine-readable output", "config": "path to cautious.yaml"})
@_clean_errors
def status(c: Context, json_: bool = False, config: str | None = None) -> None:
    """Instances, release, state, health, LB state and addresses; the cluster's lb_url."""
    current = Sandbox(_load(config), say=_say).status()
    if json_:
        print(json.dumps(current.to_dict(), indent=2))
    else:
        _print_status(current)


@task(help={"config": "path to cautious.yaml"})
@_clean_errors
def down(c: Context, config: str | None = None) -> None:
    """Remove exactly what the sandbox created (containers, network)."""
    removed = Sandbox(_load(config), say=_say).down()
    for item in removed:
        _say(f"removed {item}")
    console.print(f"sandbox down: {len(removed)} object(s) removed")


def _print_status(current: SandboxStatus) -> None:
    table = Table(title=f"cluster {current.cluster} ({current.backend})")
    for column in ("instance", "release", "state", "health", "LB", "weight", "address"):
        table.add_column(column)
    for row in current.instances:
        table.add_row(
            row.name,
            row.release,
            row.state,
            row.health,
            row.lb_state,
            str(row.lb_weight),
            row.address,
        )
    console.print(table)
    console.print(f"lb_url: {current.lb_url or '(no load balancer running)'}")


# -- tests ---------------------------------------------------------------------------------------


@task(
    help={
        "k": "only tests matching this pytest -k expression",
        "unit": "only the unit tests (no Docker, seconds)",
    }
)
def test(c: Context, k: str | None = None, unit: bool = False) -> None:
    """Run the test suite (unit, integration, Docker, sample service)."""
    paths = "tests/unit" if unit else ""
    selection = f"-k {json.dumps(k)}" if k else ""
    result = c.run(
        f"{sys.executable} -m pytest {paths} {selection}".strip(),
        warn=True,
        pty=False,
        in_stream=False,
    )
    code = result.exited if result is not None else 1
    if code == PYTEST_NO_TESTS:
        raise Exit("cautious: pytest collected no tests; check the -k expression", code=1)
    if code:
        raise Exit(code=code)


sandbox_tasks = Collection("sandbox", up, status, down)
ns = Collection(config, build, test, sandbox_tasks)
