"""A report folder holds the same verdict four ways: JSON, Markdown, JUnit and one HTML page."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cautious.config import ClaimsConfig
from cautious.exceptions import UsageError
from cautious.measure.availability import compute_availability
from cautious.measure.claims import evaluate_claims
from cautious.measure.requestlog import RequestRecord
from cautious.report.document import (
    SCHEMA_VERSION,
    ReportDocument,
    build_report,
    render_folder,
    write_report,
)
from cautious.rollout.records import InstanceRecord, RolloutSummary, StepRecord, TimelineEvent
from matplotlib.image import imread

T = 1_700_000_000
CREATED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def step(name: str, instance: str, started: float, ended: float | None, detail: str) -> StepRecord:
    return StepRecord(name, "forward", started, ended, "ok", instances=(instance,), detail=detail)


def rolling_rollout(outcome: str = "succeeded") -> RolloutSummary:
    steps = []
    for index, instance in enumerate(("sample-1", "sample-2")):
        begin = T + 10 + 6 * index
        steps += [
            step("drain", instance, begin, begin + 1.0, "LB drain"),
            step("restart", instance, begin + 1.0, begin + 4.0, "v1 → v2"),
            step("ready", instance, begin + 4.0, begin + 4.2, "LB ready"),
        ]
    if outcome != "succeeded":
        steps[-1] = replace(
            step("ready", "sample-2", T + 20.0, None, "never ready"), outcome="failed"
        )
    return RolloutSummary(
        id="20261123T120000-abcdef",
        strategy="rolling",
        from_release="v1",
        to_release="v2",
        outcome=outcome,  # type: ignore[arg-type]
        reason="" if outcome == "succeeded" else "sample-2 | never became ready",
        steps=tuple(steps),
        started=T + 10.0,
        ended=T + 22.2,
    )


def timeline() -> list[TimelineEvent]:
    events = [TimelineEvent(T, name, "v1", "ready") for name in ("sample-1", "sample-2")]
    for index, name in enumerate(("sample-1", "sample-2")):
        begin = T + 10 + 6 * index
        events += [
            TimelineEvent(begin, name, "v1", "draining"),
            TimelineEvent(begin + 1.0, name, "v1", "stopped"),
            TimelineEvent(begin + 1.5, name, "v2", "starting"),
            TimelineEvent(begin + 4.2, name, "v2", "ready"),
        ]
    return events


def sample_document(
    claims: ClaimsConfig | None = None,
    rollout: RolloutSummary | None = None,
    outage_seconds: int = 2,
) -> ReportDocument:
    """30 s at 20 req/s over two instances; an outage of ``outage_seconds`` at T+12."""
    records = []
    for second in range(32):
        outage = 12 <= second < 12 + outage_seconds
        for i in range(10 if outage else 20):
            instance = ("sample-1", "sample-2")[i % 2]
            broken = outage and i < 3
            records.append(
                RequestRecord(
                    T + second + i / 20,
                    250.0 if broken else 15.0 + i,  # a refused connection, quickly
                    0 if broken else 200,
                    error="ConnectionError" if broken else "",
                    instance="" if broken else instance,
                    release="" if broken else ("v1" if second < 16 else "v2"),
                )
            )
    availability = compute_availability(
        records, target_rate=20, slo=0.999, rollout_start=T + 10.0, rollout_end=T + 22.2
    )
    return build_report(
        command="invoke deploy --release v2",
        availability=availability,
        claims=evaluate_claims(claims or ClaimsConfig(), availability),
        rollout=rollout if rollout is not None else rolling_rollout(),
        timeline=timeline(),
        instances=[InstanceRecord("sample-1", "v2"), InstanceRecord("sample-2", "v2")],
        context={"lb_url": "http://127.0.0.1:8080/", "rate": 20},
        created=CREATED,
    )


def sample_report(
    claims: ClaimsConfig | None = None,
    rollout: RolloutSummary | None = None,
    outage_seconds: int = 2,
) -> dict[str, Any]:
    """report.json of :func:`sample_document`."""
    return sample_document(claims, rollout, outage_seconds).to_dict(Path.cwd())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One written report shared by the tests that only read it (rendering takes a second)."""
    out = tmp_path_factory.mktemp("report")
    write_report(sample_document(), out)
    return out


def test_the_report_has_every_key_the_design_promises() -> None:
    report = sample_report()
    assert report["schema_version"] == SCHEMA_VERSION == 1
    assert report["command"] == "invoke deploy --release v2"
    assert report["created"] == "2026-11-23T12:00:00Z"
    assert report["verdict"] in ("pass", "fail", "not-enough-data")
    for claim in report["claims"]:
        assert set(claim) == {"name", "target", "measured", "verdict", "detail"}
    assert {
        "sent",
        "failed",
        "missing",
        "success_ratio",
        "longest_error_window_s",
        "seconds_with_errors",
        "error_budget_used",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "per_second",
        "phases",
        "per_instance",
        "per_release",
    } <= set(report["availability"])
    assert {"strategy", "from_release", "to_release", "outcome", "reason", "steps"} <= set(
        report["rollout"]
    )
    assert set(report["rollout"]["steps"][0]) == {
        "name",
        "instance",
        "started",
        "ended",
        "outcome",
        "detail",
    }
    assert set(report["timeline"][0]) == {"t", "instance", "release", "state"}
    assert report["instances"] == [
        {"name": "sample-1", "release": "v2"},
        {"name": "sample-2", "release": "v2"},
    ]


def test_the_verdict_follows_the_claims() -> None:
    assert sample_report(outage_seconds=0)["verdict"] == "pass"
    failing = sample_report(outage_seconds=2)
    assert failing["verdict"] == "fail"
    assert "longest error window" in failing["verdict_reason"]
    lacking = sample_report(ClaimsConfig(min_requests=100_000))
    assert lacking["verdict"] == "not-enough-data"


def test_a_rolled_back_rollout_fails_the_verdict_even_when_claims_hold() -> None:
    report = sample_report(rollout=rolling_rollout("rolled-back"), outage_seconds=0)
    assert {c["verdict"] for c in report["claims"]} == {"pass"}
    assert report["verdict"] == "fail"
    assert report["verdict_reason"].startswith("the rollout was rolled back")


def test_a_report_without_a_rollout_says_so_with_null() -> None:
    availability = compute_availability([], target_rate=10)
    report = build_report(command="invoke load", availability=availability).to_dict(Path.cwd())
    assert (report["rollout"], report["timeline"], report["instances"]) == (None, [], [])
    assert report["verdict"] == "not-enough-data"


def test_the_folder_holds_the_four_reports_and_what_the_page_shows(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [
        "junit.xml",
        "report.css",
        "report.html",
        "report.json",
        "report.md",
        "timeline.png",  # no canary was judged: no canary.png
    ]


def test_report_json_is_stable_with_sorted_keys(folder: Path, tmp_path: Path) -> None:
    text = (folder / "report.json").read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    write_report(sample_document(), tmp_path / "again")
    assert (tmp_path / "again" / "report.json").read_text() == text


def test_report_md_leads_with_the_verdict_then_claims_availability_and_steps(
    folder: Path,
) -> None:
    text = (folder / "report.md").read_text()
    assert text.startswith("## ❌ Cautious: fail\n")
    assert "| longest error window | ≤ 1 s | 2 s | ❌ fail |" in text
    assert "| success ratio | ≥ 99.9 % | 95.6667 % | ❌ fail |" in text
    assert "### Availability" in text
    assert "| whole run | 30 s | 580 | 6 | 20 | 95.6667 % | 2 s | 2 |" in text
    assert "| during rollout |" in text
    assert "| 1 | drain | sample-1 | +10.0 s | 1.0 s | ok | LB drain |" in text
    assert "| sample-2 | v2 |" in text


def test_an_instance_whose_host_does_not_answer_is_named_with_its_host(tmp_path: Path) -> None:
    document = replace(
        sample_document(),
        instances=(
            InstanceRecord("sample-1", "v1", host="host-1"),
            InstanceRecord("sample-2", "", state="unreachable", host="host-2"),
        ),
    )
    write_report(document, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["instances"] == [
        {"name": "sample-1", "release": "v1"},
        {"name": "sample-2", "release": "", "state": "unreachable", "host": "host-2"},
    ]
    assert "| sample-2 | unknown: host-2 does not answer |" in (tmp_path / "report.md").read_text()


def test_report_md_escapes_table_pipes(tmp_path: Path) -> None:
    write_report(sample_document(rollout=rolling_rollout("rolled-back")), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "sample-2 | never became ready" in text  # the reason line is prose, not a table
    assert "| 6 | ready | sample-2 | +20.0 s | cut short | failed | never ready |" in text


def test_junit_xml_has_a_testcase_per_claim_and_fails_the_failed_ones(folder: Path) -> None:
    suite = ET.parse(folder / "junit.xml").getroot()
    assert suite.tag == "testsuite"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"success_ratio", "longest_error_window_s", "p99_ms", "rollout"}
    failure = cases["longest_error_window_s"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "longest_error_window_s" in message
    assert "measured 2 s" in message
    assert "target ≤ 1 s" in message
    assert cases["p99_ms"].find("failure") is None
    assert cases["rollout"].find("failure") is None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "0")


def test_junit_xml_skips_claims_without_enough_data(tmp_path: Path) -> None:
    write_report(sample_document(ClaimsConfig(min_requests=100_000)), tmp_path)
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    skipped = [case.find("skipped") for case in suite.iter("testcase")]
    assert sum(s is not None for s in skipped) == 3
    assert "min_requests is 100,000" in (skipped[0].get("message") or "")  # type: ignore[union-attr]
    assert suite.get("skipped") == "3"


def test_junit_xml_fails_a_rolled_back_rollout(tmp_path: Path) -> None:
    write_report(sample_document(rollout=rolling_rollout("rolled-back")), tmp_path)
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    (rollout,) = [c for c in suite.iter("testcase") if c.get("name") == "rollout"]
    failure = rollout.find("failure")
    assert failure is not None
    assert "rolled-back" in (failure.get("message") or "")


def test_report_html_has_no_inline_style_script_or_image_only_files_beside_it(
    folder: Path,
) -> None:
    page = (folder / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<style" not in page and " style=" not in page
    assert "data:" not in page and "url(" not in page
    assert '<link rel="stylesheet" href="report.css">' in page
    assert '<img id="timeline-chart" src="timeline.png"' in page
    assert (folder / "timeline.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (folder / "report.css").read_text().startswith("body{")


def test_report_html_escapes_what_it_shows(tmp_path: Path) -> None:
    document = replace(
        sample_document(), command="invoke deploy --release '<script>alert(1)</script>'"
    )
    write_report(document, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_render_folder_rebuilds_the_same_files(folder: Path) -> None:
    before = {name: (folder / name).read_bytes() for name in ("report.md", "junit.xml")}
    html = (folder / "report.html").read_bytes()
    for name in ("report.md", "junit.xml", "report.html"):
        (folder / name).unlink()
    paths = render_folder(folder / "report.json")
    assert paths["html"] == folder / "report.html"
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert (folder / "report.html").read_bytes() == html
    render_folder(folder)  # the folder works as well as the file


def test_render_folder_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no file at"):
        render_folder(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        render_folder(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema_version": 99}')
    with pytest.raises(UsageError, match="schema version 1"):
        render_folder(tmp_path / "other.json")
    (tmp_path / "partial.json").write_text('{"schema_version": 1, "verdict": "pass"}')
    with pytest.raises(UsageError, match="tool is missing"):
        render_folder(tmp_path / "partial.json")


def test_a_report_with_no_data_and_no_rollout_still_renders(tmp_path: Path) -> None:
    availability = compute_availability([], target_rate=10, slo=0.999)
    report = build_report(
        command="invoke load --url http://127.0.0.1:9/",
        availability=availability,
        claims=evaluate_claims(ClaimsConfig(), availability),
        created=CREATED,
    )
    paths = write_report(report, tmp_path)
    assert 'id="timeline-chart"' in paths["html"].read_text()
    assert "⚠️ Cautious: not-enough-data" in paths["markdown"].read_text()


# --- the page as a browser shows it ----------------------------------------------------------


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI=true requires the browser check")
        pytest.skip("chromium is not installed")
    return browser


def _run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_report_html_shows_the_chart_in_a_headless_browser(folder: Path, tmp_path: Path) -> None:
    browser = _chromium()
    page = (folder / "report.html").resolve().as_uri()
    dom = _run_chromium(browser, tmp_path / "profile", "--dump-dom", page).stdout
    assert '<img id="timeline-chart" src="timeline.png"' in dom
    assert 'class="badge fail"' in dom

    shot = tmp_path / "shot.png"
    _run_chromium(
        browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1600", page
    )
    assert shot.stat().st_size > 50_000
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    colours = {tuple(p) for p in pixels[::8, ::8, :3].reshape(-1, 3).tolist()}
    assert len(colours) > 50  # text, tables and the chart, not a blank or one-colour page
    chart_band = pixels[700:1400, 100:1100, :3]
    assert chart_band.std() > 0.05  # the chart's region holds a drawing


# Jenkins' default for published HTML (hudson.model.DirectoryBrowserSupport.CSP)
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"


class _JenkinsLikeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the report folder with Jenkins' default Content-Security-Policy header."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", JENKINS_CSP)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the page, not the access log."""


def _screenshot(browser: str, url: str, shot: Path, profile: Path) -> Any:
    _run_chromium(browser, profile, f"--screenshot={shot}", "--window-size=1280,1600", url)
    return imread(shot)[:, :, :3]


def test_report_html_shows_its_style_and_chart_under_jenkins_default_csp(
    folder: Path, tmp_path: Path
) -> None:
    """Served as Jenkins' publishHTML serves it: the badge keeps its colour and the chart shows.
    The same page with the old inline style and data-URI chart loses both under this policy."""
    browser = _chromium()
    inline = tmp_path / "inline"
    inline.mkdir()
    css = (folder / "report.css").read_text()
    chart = base64.b64encode((folder / "timeline.png").read_bytes()).decode()
    (inline / "report.html").write_text(
        (folder / "report.html")
        .read_text()
        .replace('<link rel="stylesheet" href="report.css">', f"<style>{css}</style>")
        .replace('src="timeline.png"', f'src="data:image/png;base64,{chart}"')
    )
    handler = functools.partial(_JenkinsLikeHandler, directory=str(folder.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            served = urllib.request.urlopen(f"{base}/{folder.name}/report.html", timeout=10)
            assert served.headers["Content-Security-Policy"] == JENKINS_CSP
            ours = _screenshot(
                browser, f"{base}/{folder.name}/report.html", tmp_path / "ours.png", tmp_path / "p1"
            )
            old = _screenshot(
                browser, f"{base}/inline/report.html", tmp_path / "old.png", tmp_path / "p2"
            )
        finally:
            server.shutdown()

    def badge_red(pixels: Any) -> int:  # the fail badge's background, #c62828
        red = (abs(pixels[..., 0] - 0xC6 / 255) < 0.04) & (abs(pixels[..., 1] - 0x28 / 255) < 0.04)
        return int(red.sum())

    def chart_drawn(pixels: Any) -> float:
        return float(pixels[700:1400, 100:1100].std())

    assert badge_red(ours) > 200 and chart_drawn(ours) > 0.05
    assert badge_red(old) < 50 and chart_drawn(old) < 0.05  # the policy really is enforced
