"""``python -m chaoscautious.worker``: one rollout in its own process, for ``start_rollout``.

It runs the deploy chain of the library (``DeployPipeline.deploy``: test → build → sandbox →
rollout, journaled, under the cluster's lock) without the Locust load ``invoke deploy`` adds —
the experiment measures with its own load. The outcome goes to ``--result`` as JSON, written
atomically, so whoever waits can tell "rolled back" from "the worker died": ``outcome`` and
``reason`` always, and ``rollout`` — the rollout's ``RolloutSummary.to_dict()``, which the game
day reads back with ``RolloutSummary.from_dict`` — when one ran.

SIGTERM during the rollout makes the runner roll back (``terminate_as_interrupt``), which is how
a bounded wait stops a rollout that takes too long.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cautious.files import write_json_atomic

__all__ = ["main"]


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes KEY=JSON, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaoscautious.worker", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--tests", action="store_true", help="run service.test_command first")
    parser.add_argument("--set", dest="settings", action="append", type=_setting, default=[])
    args = parser.parse_args(argv)

    from cautious.config import load_config
    from cautious.deploy import DeployPipeline
    from cautious.exceptions import CautiousError
    from cautious.rollout.runner import Interrupted

    overrides: dict[str, Any] = {"cluster.name": args.cluster, **dict(args.settings)}
    if not args.tests:
        overrides["service.test_command"] = ""  # the experiment is about the rollout
    started = time.time()
    result: dict[str, Any] = {"release": args.release, "started": started, "pid_started": True}
    try:
        config = load_config(args.config, overrides)
        _say(f"deploy {args.release} to cluster {config.cluster.name}")
        outcome = DeployPipeline(config, say=_say).deploy(args.release)
    except CautiousError as exc:
        _say(f"cautious: {exc}")
        result.update(outcome="failed", reason=str(exc), ended=time.time())
        write_json_atomic(args.result, result)
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt) as exc:
        # The runner re-raises an interrupt only when its rollback failed: the cluster is
        # mixed and the journal says aborted; the next restore or deploy converges it.
        result.update(outcome="aborted", reason=f"interrupted ({exc})", ended=time.time())
        write_json_atomic(args.result, result)
        return 1
    if outcome is None:
        result.update(outcome="unchanged", reason="the cluster already ran this release")
    else:
        result.update(
            outcome=outcome.outcome,
            reason=outcome.reason,
            rollout=outcome.summary().to_dict(),
        )
    result["ended"] = time.time()
    write_json_atomic(args.result, result)
    _say(f"rollout {result['outcome']}: {result.get('reason', '')}")
    return 0 if result["outcome"] in {"succeeded", "unchanged"} else 1


if __name__ == "__main__":
    sys.exit(main())
