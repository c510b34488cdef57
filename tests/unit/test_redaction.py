"""Secret values are hidden in every text and record Cautious writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cautious.backends.fake import FakeBackend
from cautious.cli import tasks
from cautious.cli.terminal import clean_errors
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config
from cautious.deploy import DeployPipeline
from cautious.redaction import (
    REDACTED,
    looks_secret,
    redact,
    redact_data,
    remember,
    remember_environment,
)
from cautious.report.document import build_report, write_report
from invoke.exceptions import Exit

from tests.unit.fakes import BEHAVIOURS, fake_config


def test_names_with_token_secret_password_or_key_look_secret() -> None:
    assert all(map(looks_secret, ["API_TOKEN", "db_password", "AWS_SECRET_ACCESS_KEY", "KEY"]))
    assert not any(map(looks_secret, ["APP_GREETING", "PORT", "DATABASE_URL"]))


def test_a_remembered_value_is_redacted_wherever_it_appears() -> None:
    remember(["s3cr3t-value-one"])
    assert redact("failed: token=s3cr3t-value-one (twice: s3cr3t-value-one)") == (
        f"failed: token={REDACTED} (twice: {REDACTED})"
    )


def test_records_keep_their_shape_while_their_strings_are_redacted() -> None:
    remember(["s3cr3t-value-two"])
    record = {"reason": "env s3cr3t-value-two", "steps": [("s3cr3t-value-two", 1)], "n": 2}
    assert redact_data(record) == {"reason": f"env {REDACTED}", "steps": [(REDACTED, 1)], "n": 2}


def test_short_values_are_not_searched_for_in_free_text() -> None:
    remember(["v2"])
    assert redact("rollout v1 → v2") == "rollout v1 → v2"


def test_secret_looking_variables_of_the_process_environment_are_remembered() -> None:
    remember_environment({"GITHUB_TOKEN": "ghp_planted_for_the_test", "HOME": "/home/someone"})
    assert redact("auth ghp_planted_for_the_test at /home/someone") == (
        f"auth {REDACTED} at /home/someone"
    )


PLANTED = "planted-secret-8d1f3c"  # declared in the configuration of the run below


def test_a_planted_secret_appears_in_no_artefact_of_a_rolled_back_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fake deploy whose new release crashes and prints its secret on the way out: the
    rollback's reason carries the instance's last output into the journal (wherever the
    backend keeps it), the report, the terminal and the error line. None may hold it."""
    raw = fake_config(tmp_path).model_dump(mode="json")
    raw["releases"]["crash-on-start"]["env"] = {"DB_URL": {"value": PLANTED, "secret": True}}
    config = Config.model_validate(raw)
    backend = FakeBackend(config, say=tasks._say, behaviours=BEHAVIOURS)
    monkeypatch.setattr(backend, "logs", lambda *_, **__: f"fatal: cannot reach {PLANTED}")
    sandbox = Sandbox(config, backend, say=tasks._say)
    sandbox.up(config.cluster.instances, "v1")
    pipeline = DeployPipeline(config, say=tasks._say, stage=tasks._stage, sandbox=sandbox)
    folder = tmp_path / "reports" / "deploy"

    def measured(prepared: Any, kind: str) -> Any:
        result = pipeline.run_rollout(prepared, kind)
        write_report(build_report(command="deploy", rollout=result.summary()), folder)
        return result

    @clean_errors
    def deploy() -> None:
        tasks._finish(pipeline.deploy("crash-on-start", rollout=measured))

    with pytest.raises(Exit) as error:
        deploy()
    printed = capsys.readouterr()
    artefacts = {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert PLANTED in str(backend.logs("sample-1"))  # the leak was really offered
    assert error.value.code == 1 and "rolled-back" in str(error.value.message)
    assert any(path.endswith("report.json") for path in artefacts)
    journal = json.dumps([vars(record) for record in pipeline.journal.rollouts()])
    assert "rolled-back" in journal
    for where, text in {
        **artefacts,
        "journal": journal,
        "stdout": printed.out,
        "stderr": printed.err,
        "error": str(error.value.message),
    }.items():
        assert PLANTED not in text, where
    assert REDACTED in artefacts[str(next(folder.glob("report.json")))]
