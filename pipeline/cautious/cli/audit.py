"""``invoke audit`` / ``cautious audit``: the journal's chain, and the journal against what runs.

Exit 0 when every change is accounted for, 1 with the list of findings when the cluster or its
journal drifted (the same check a deploy makes before it starts).
"""

from __future__ import annotations

import json

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from cautious.audit import AuditResult
from cautious.audit import audit as audit_cluster
from cautious.cli.terminal import clean_errors, console
from cautious.cluster.sandbox import Sandbox
from cautious.config import load_config

__all__ = ["audit"]


@task(help={"json": "machine-readable output", "config": "path to cautious.yaml"})
@clean_errors
def audit(c: Context, json_: bool = False, config: str | None = None) -> None:
    """Verify the journal's hash chain and that only journaled rollouts changed the cluster."""
    cfg = load_config(config)
    sandbox = Sandbox(cfg, say=lambda line: console.print(f"[dim]{line}[/dim]"))
    result = audit_cluster(sandbox.journal, sandbox.backend)
    if json_:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print(cfg.cluster.name, result)
    if not result.clean:
        raise Exit(code=1)


def _print(cluster: str, result: AuditResult) -> None:
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
    for accepted in result.accepted:
        console.print(f"[dim]accepted by a forced deploy: {accepted}[/dim]")
    checked = f"{result.records} journal record(s), {result.occupants} container(s) or process(es)"
    if result.clean:
        print(f"audit of {cluster}: no drift ({checked})")
        return
    print(f"audit of {cluster}: {len(result.findings)} finding(s) ({checked})")
    for finding in result.findings:
        print(f"  {finding.line()}")
