"""The chaos tasks: ``invoke chaos.run EXPERIMENT`` and ``invoke gameday [--suite FILE]``.

Thin, like every task module: parse flags, load the configuration, hand over to
``cautious.gameday.run``, print the outcome, exit 0 when every experiment held, 1 when one deviated
or failed, 2 for bad input (one line saying what to fix). ``cautious.gameday.run`` is imported
only when a chaos task runs; it runs experiments through the ``chaos`` CLI and never imports the
Chaos Toolkit extension, so the other tasks keep working on a machine without it.

Exported as ``chaos_ns`` (the ``chaos`` collection) and ``gameday`` for ``cautious.tasks``.
``python -m cautious.cli.chaos_tasks`` runs them on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.program import Program
from invoke.tasks import task

from cautious import __version__
from cautious.cli.terminal import clean_errors, console
from cautious.config import Config, find_config_path, load_config
from cautious.exceptions import ConfigError
from cautious.inputs import folder_to_write
from cautious.measure.session import default_report_dir

__all__ = ["chaos_ns", "gameday", "report_folder", "run"]


_HELP = {
    "config": "path to cautious.yaml (default: $CAUTIOUS_CONFIG or ./cautious.yaml)",
    "report_dir": "report folder (default: <reports_dir>/<timestamp>-<command>)",
    "timeout": "seconds an experiment may take before it is stopped (default 900)",
}


def _say(message: str) -> None:
    console.print(message, markup=False)


def _timeout(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"--timeout takes seconds, not {value!r}") from None
    if not 0 < seconds <= 7_200:
        raise ConfigError(f"--timeout must be between 0 and 7200 s, not {value!r}")
    return seconds


def report_folder(config: Config, given: str | None, command: str) -> Path:
    """Where a command writes its report: ``--report-dir`` (checked before the run), or a
    new folder under ``reports_dir``."""
    return folder_to_write(given, "--report-dir") if given else default_report_dir(config, command)


def _finish(document: dict[str, Any], folder: Path) -> None:
    """Print one line per experiment, where the summary is, and exit 1 unless all held."""
    for entry in document["experiments"]:
        figures = entry.get("figures") or {}
        ratio = figures.get("success_ratio")
        shown = f"{ratio * 100:.3f} %" if isinstance(ratio, int | float) and ratio >= 0 else "-"
        mark = "[green]held[/green]" if entry["verdict"] == "pass" else "[red]FAILED[/red]"
        console.print(
            f"{mark} {entry['name']}: {entry['status']}"
            f"{' (deviated)' if entry['deviated'] else ''}, success ratio {shown}, "
            f"longest error window {figures.get('longest_error_window_s', '-')} s, "
            f"rollout {(entry.get('rollout') or {}).get('outcome', '-')}, "
            f"cluster after: {(entry.get('cleanup') or {}).get('healthy', '-')} healthy"
        )
    console.print(f"report: {folder / 'report.md'}")
    if document["verdict"] != "pass":
        reason = document["verdict_reason"]
        raise Exit(f"cautious: game day {document['verdict']}: {reason}", code=1)
    console.print(f"[green]{document['verdict_reason']}[/green]")


@task(
    help={
        "experiment": "an experiment file, or a name under chaos/experiments (kill-mid-rollout)",
        **_HELP,
    }
)
@clean_errors
def run(
    c: Context,
    experiment: str,
    config: str | None = None,
    report_dir: str | None = None,
    timeout: str | None = None,
) -> None:
    """Run one Chaos Toolkit experiment on the sandbox, under load, with a report. Exit 1
    unless it held (hypothesis met before and after, no action or rollback failed)."""
    from cautious.gameday.run import GameDay
    from cautious.gameday.suite import DEFAULT_TIMEOUT_S, Suite, SuiteEntry, resolve_experiment

    seconds = _timeout(timeout) or DEFAULT_TIMEOUT_S
    config_path = find_config_path(config)
    cfg = load_config(config_path)
    path = resolve_experiment(experiment, cfg)
    folder = report_folder(cfg, report_dir, "chaos")
    entry = SuiteEntry(path=path, name=path.stem, timeout_s=seconds)
    game = GameDay(cfg, config_path, folder, say=_say, command=f"chaos.run {experiment}")
    _finish(game.run(Suite(name=path.stem, entries=(entry,))), folder)


@task(help={"suite": "the game-day suite file (default: chaos/gameday.yaml)", **_HELP})
@clean_errors
def gameday(
    c: Context,
    suite: str | None = None,
    config: str | None = None,
    report_dir: str | None = None,
    timeout: str | None = None,
) -> None:
    """Run a suite of experiments on the sandbox, one after the other, going on after a failure;
    write one summary. Exit 1 if any experiment deviated or failed."""
    from dataclasses import replace

    from cautious.gameday.run import GameDay
    from cautious.gameday.suite import DEFAULT_SUITE, load_suite

    seconds = _timeout(timeout)
    config_path = find_config_path(config)
    cfg = load_config(config_path)
    suite_path = Path(suite) if suite else cfg.root / DEFAULT_SUITE
    chosen = load_suite(suite_path)
    if seconds is not None:
        entries = tuple(replace(entry, timeout_s=seconds) for entry in chosen.entries)
        chosen = replace(chosen, entries=entries)
    folder = report_folder(cfg, report_dir, "gameday")
    command = f"gameday --suite {suite}" if suite else "gameday"
    game = GameDay(cfg, config_path, folder, say=_say, command=command)
    _finish(game.run(chosen), folder)


chaos_ns = Collection("chaos", run)

if __name__ == "__main__":
    program = Program(
        namespace=Collection(gameday, chaos_ns), name="Cautious chaos", version=__version__
    )
    program.run()
