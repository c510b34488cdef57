"""actions/lib/cautious_github.py: the report folder → job summary, annotations and outputs.

The reports here are written by the real ``cautious.report.document`` from a synthetic request
log, so a
change of the report.json schema that the actions rely on shows up here first.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cautious.config import ClaimsConfig
from cautious.measure.availability import compute_availability
from cautious.measure.claims import evaluate_claims
from cautious.measure.requestlog import RequestRecord
from cautious.report.document import build_report, write_report
from cautious.rollout.records import RolloutSummary

from tests.actions.conftest import ACTIONS, REPO

SCRIPT = ACTIONS / "lib" / "cautious_github.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cautious_github", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


gh = _module()


def _records(error_every: int | None, seconds: int = 12, rate: int = 20) -> list[RequestRecord]:
    t0 = 1_763_900_000.0
    records = []
    for second in range(seconds):
        for n in range(rate):
            index = second * rate + n
            bad = error_every is not None and index % error_every == 0
            records.append(
                RequestRecord(
                    start=t0 + second + n / rate,
                    latency_ms=12.0,
                    status=500 if bad else 200,
                    instance="sample-1",
                    release="errors-5pct" if error_every else "v2",
                )
            )
    return records


def _report_dir(
    tmp_path: Path, error_every: int | None, outcome: str = "succeeded"
) -> tuple[Path, dict[str, Any]]:
    availability = compute_availability(_records(error_every), target_rate=20, slo=0.999)
    claims = evaluate_claims(
        ClaimsConfig(success_ratio=0.999, longest_error_window_s=None, p99_ms=300, min_requests=50),
        availability,
    )
    document = build_report(
        command="invoke deploy --release test",
        availability=availability,
        claims=claims,
        rollout=RolloutSummary(
            id="test",
            strategy="rolling",
            from_release="v1",
            to_release="v2",
            outcome=outcome,  # type: ignore[arg-type]
            reason="readiness gate failed on sample-2" if outcome != "succeeded" else "",
            started=None,
            ended=None,
        ),
    )
    folder = tmp_path / "report"
    write_report(document, folder)
    return folder, document.to_dict(folder)


@pytest.fixture
def github_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    return summary, output


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_a_failed_claim_gives_one_error_named_after_it(
    tmp_path: Path, github_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, report = _report_dir(tmp_path, error_every=20)  # 5 % HTTP 500
    assert report["verdict"] == "fail"

    values = gh.publish(folder, 1, "cautious deploy")

    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]
    assert len(errors) == 1, errors
    expected = "::error title=claim success_ratio::success_ratio: measured 95 %25"  # % escaped
    assert errors[0].startswith(expected)
    summary, output = github_files
    markdown = (folder / "report.md").read_text("utf-8")
    table = gh.junit_table(folder / "junit.xml")
    assert summary.read_text(encoding="utf-8") == f"{markdown}\n{table}"
    assert (
        _outputs(output)
        == values
        == {
            "verdict": "fail",
            "success-ratio": repr(report["availability"]["success_ratio"]),
            "report-dir": str(folder),
            "exit-code": "1",
        }
    )
    assert float(values["success-ratio"]) == pytest.approx(0.95)


def test_a_passing_report_annotates_nothing(
    tmp_path: Path, github_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = _report_dir(tmp_path, error_every=None)
    values = gh.publish(folder, 0, "cautious deploy")
    assert "::" not in capsys.readouterr().out
    assert values["verdict"] == "pass"
    assert values["success-ratio"] == "1.0"
    assert "Cautious: pass" in github_files[0].read_text(encoding="utf-8")


def test_a_rollback_is_annotated_even_when_the_claims_held(
    tmp_path: Path, github_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, report = _report_dir(tmp_path, error_every=None, outcome="rolled-back")
    assert report["verdict"] == "fail"
    gh.publish(folder, 1, "cautious deploy")
    out = capsys.readouterr().out
    assert "::error title=rollout rolled-back::rollout v1 → v2 rolled-back: readiness gate" in out


def test_no_report_means_an_error_pointing_at_bad_input(
    tmp_path: Path, github_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    values = gh.publish(tmp_path / "nothing", 2, "cautious deploy")
    out = capsys.readouterr().out
    assert out.startswith("::error title=cautious deploy::cautious deploy exited with 2")
    assert values["verdict"] == "error" and values["success-ratio"] == ""
    assert "no report" in github_files[0].read_text(encoding="utf-8")


CONFIG = """\
service:
  name: sample  # claims: in a comment is not the section
claims:
  # the availability promise
  success_ratio: 0.999

  longest_error_window_s: 1
  p99_ms:
    300
load:
  rate: 100
"""


def test_claim_lines_finds_each_claim_under_the_claims_key() -> None:
    assert gh.claim_lines(CONFIG) == {
        gh.CLAIMS_SECTION: 3,
        "success_ratio": 5,
        "longest_error_window_s": 7,
        "p99_ms": 8,
    }


def test_claim_lines_of_a_flow_mapping_or_no_claims_section() -> None:
    assert gh.claim_lines("service: {}\nclaims: {p99_ms: 200}\n") == {gh.CLAIMS_SECTION: 2}
    assert gh.claim_lines("service:\n  name: x\n") == {}


def test_a_failed_claims_annotation_points_at_its_line_in_cautious_yaml(
    tmp_path: Path,
    github_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = _report_dir(tmp_path, error_every=20)
    config = tmp_path / "service" / "cautious.yaml"
    config.parent.mkdir()
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))  # the repository's root
    monkeypatch.chdir(config.parent)  # the action runs in its working-directory

    gh.publish(folder, 1, "cautious deploy", Path("cautious.yaml"))

    [error] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]
    assert error.startswith(
        "::error file=service/cautious.yaml,line=5,title=claim success_ratio::success_ratio: "
    )


def test_a_claim_the_file_does_not_declare_points_at_the_claims_section_or_line_one(
    tmp_path: Path,
) -> None:
    report = {"verdict": "fail", "claims": [{"name": "failed_requests", "verdict": "fail"}]}
    declared = tmp_path / "declared.yaml"
    declared.write_text(CONFIG, encoding="utf-8")
    bare = tmp_path / "bare.yaml"
    bare.write_text("service:\n  name: x\n", encoding="utf-8")

    [in_section] = gh.annotation_lines(report, 1, "x", gh.claim_locations(declared, tmp_path))
    [at_top] = gh.annotation_lines(report, 1, "x", gh.claim_locations(bare, tmp_path))
    [unreadable] = gh.annotation_lines(report, 1, "x", gh.claim_locations(tmp_path / "no", None))

    assert in_section.startswith("::error file=declared.yaml,line=3,title=claim failed_requests::")
    assert at_top.startswith("::error file=bare.yaml,line=1,title=claim failed_requests::")
    assert unreadable.startswith("::error title=claim failed_requests::")


def test_junit_xml_becomes_a_table_in_the_job_summary(tmp_path: Path) -> None:
    folder, _ = _report_dir(tmp_path, error_every=20)

    table = gh.junit_table(folder / "junit.xml").splitlines()

    assert table[0] == "### Tests (junit.xml): 2 passed, 1 failed, 0 skipped"
    assert table[2:4] == ["| test | result | detail |", "|---|---|---|"]
    rows = {row.split(" | ")[0].removeprefix("| "): row for row in table[4:]}
    assert "❌ failed | success_ratio: measured 95" in rows["cautious.claims · success_ratio"]
    assert "✅ passed" in rows["cautious.claims · p99_ms"]
    assert "✅ passed" in rows["cautious.rollout · rollout"]
    assert gh.junit_table(tmp_path / "missing.xml") == ""


def test_workflow_commands_are_escaped() -> None:
    line = gh.command("error", "claim a:b,c", "50% down\nsecond line\r")
    assert line == "::error title=claim a%3Ab%2Cc::50%25 down%0Asecond line%0D"


def test_not_enough_data_warns_and_deviated_experiments_are_errors() -> None:
    report = {
        "verdict": "fail",
        "claims": [
            {
                "name": "p99_ms",
                "target": 300,
                "measured": None,
                "verdict": "not-enough-data",
                "detail": "only 3 requests",
            },
        ],
        "experiments": [
            {"name": "kill-mid-rollout", "status": "completed", "deviated": True},
            {"name": "rolling-under-load", "status": "completed", "deviated": False},
            {"name": "lb-restart", "verdict": "fail"},
        ],
    }
    lines = gh.annotation_lines(report, 1, "cautious gameday")
    assert lines == [
        "::warning title=claim p99_ms::p99_ms: only 3 requests",
        "::error title=experiment kill-mid-rollout::kill-mid-rollout: completed (deviated)",
        "::error title=experiment lb-restart::lb-restart: fail",
    ]


def test_the_command_line_writes_the_github_files(
    tmp_path: Path, github_files: tuple[Path, Path]
) -> None:
    folder, _ = _report_dir(tmp_path, error_every=20)
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "publish",
            "--report-dir",
            str(folder),
            "--exit-code",
            "1",
            "--command",
            "cautious deploy",
            "--config",
            str(REPO / "cautious.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = 1 + (REPO / "cautious.yaml").read_text().splitlines().index("  success_ratio: 0.999")
    assert f"::error file={REPO / 'cautious.yaml'},line={line},title=claim success_ratio::" in (
        result.stdout
    )
    assert _outputs(github_files[1])["verdict"] == "fail"
    assert json.loads((folder / "report.json").read_text())["verdict"] == "fail"
