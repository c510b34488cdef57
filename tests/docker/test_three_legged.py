"""Three-legged deploys of the stateful sample on a real PostgreSQL, under load.

The plan renames ``users.name`` to ``users.full_name``: expand (add the column, double
writes), migrate (backfill, read the new column), contract (stop writing the old column, drop
it). Every leg is measured under load and checked against every write the load generator saw
acknowledged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.config import Config
from cautious.deploy import DeployPipeline
from cautious.legged import ACKED_NAME, deploy_legs

from tests.docker.stateful import stateful_config


def _reports(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*/report.json"))]


def test_three_legs_under_load_lose_no_write_and_fail_no_request(
    tmp_path: Path, torn_down_clusters: list[Config]
) -> None:
    config = stateful_config(tmp_path)
    torn_down_clusters.append(config)
    folder = tmp_path / "legs"
    result = deploy_legs(config, folder, say=print)

    assert result.succeeded, result.to_dict()
    assert [leg.state for leg in result.legs] == ["succeeded"] * 3
    reports = _reports(folder)
    assert len(reports) == 3
    for report in reports:
        availability = report["availability"]
        assert availability["failed"] == 0 and availability["missing"] == 0, availability
        assert report["verdict"] == "pass"
    acked = [
        line
        for path in folder.glob(f"*/load/{ACKED_NAME}")
        for line in path.read_text().splitlines()
    ]
    assert len(acked) > 100
    checks = [run for leg in result.legs for run in leg.hooks if run.when == "check"]
    assert [run.exit_code for run in checks] == [0, 0, 0]
    last = json.loads(checks[-1].output.strip().splitlines()[-1])
    assert last["columns"] == ["full_name"]
    assert last["missing"] == 0 and last["inconsistent"] == 0
    assert last["acked"] == len({json.loads(line)["id"] for line in acked})
    journal = DeployPipeline(config, sandbox=Sandbox(config, say=print), say=print).journal
    assert [note["leg"] for note in journal.notes("leg-end")] == ["expand", "migrate", "contract"]
    assert len(journal.notes("measured")) == 3


def test_a_failing_migrate_hook_leaves_the_data_as_expand_left_it_and_the_service_serving(
    tmp_path: Path, torn_down_clusters: list[Config]
) -> None:
    raw = json.loads(json.dumps(stateful_config(tmp_path).model_dump(mode="json")["legs"]))
    raw[1]["before"] = [{"name": "backfill", "command": ["python3", "/app/hooks.py", "fail"]}]
    config = stateful_config(tmp_path, legs=raw)
    torn_down_clusters.append(config)
    result = deploy_legs(config, tmp_path / "legs", say=print)

    assert [leg.state for leg in result.legs] == ["succeeded", "failed", "skipped"]
    assert result.legs[1].reason.startswith("before hook backfill exited 1")
    sandbox = Sandbox(config, say=lambda _: None)
    assert {item.release for item in sandbox.backend.instances()} == {"v2-expand"}
    expand_check = result.legs[0].hooks[-1]
    assert expand_check.when == "check" and expand_check.exit_code == 0


def test_read_only_stop_and_go_serves_every_read_and_refuses_writes_only_in_the_switch(
    tmp_path: Path, torn_down_clusters: list[Config]
) -> None:
    expand = {"name": "add-full-name", "command": ["python3", "/app/hooks.py", "expand"]}
    leg = {
        "name": "switch",
        "release": "v2-expand",
        "strategy": "stop-and-go",
        "read_only": True,
        "before": [expand],
    }
    config = stateful_config(tmp_path, legs=[leg])
    # refused writes are not served, so the overall figures fail by design: judged apart instead
    claims = config.claims.model_copy(
        update={
            "success_ratio": None,
            "failed_requests": None,
            "longest_error_window_s": None,
            "p99_ms": None,
            "read_success_ratio": 1.0,
            "write_failures": 0,
            "write_refused_max_s": 60,
        }
    )
    config = config.model_copy(update={"claims": claims})
    torn_down_clusters.append(config)
    folder = tmp_path / "legs"
    result = deploy_legs(config, folder, say=print)

    assert result.succeeded, result.to_dict()
    (report,) = _reports(folder)
    context = report["context"]
    assert context["read_write.reads_failed"] == 0 and context["read_write.reads"] > 100
    assert context["read_write.writes_failed"] == 0
    assert context["read_write.writes_refused"] > 0
    window = [s for s in report["rollout"]["steps"] if s["name"].startswith("read-only mode")]
    opened, closed = window[0]["started"], window[-1]["ended"]
    assert opened <= context["read_write.refused_first"] <= context["read_write.refused_last"]
    assert context["read_write.refused_last"] <= closed
    verdicts = {claim["name"]: claim["verdict"] for claim in report["claims"]}
    assert verdicts["read_success_ratio"] == verdicts["write_failures"] == "pass"
    check = result.legs[0].hooks[-1]
    assert check.when == "check" and check.exit_code == 0, check.output  # no write lost
