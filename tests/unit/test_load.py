"""Pure parts of cautious.measure.load: the loopback rule, the Locust command line, input checks."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from cautious.exceptions import ConfigError, PrerequisiteError, SandboxError, UsageError
from cautious.measure import load
from cautious.measure.load import (
    DEFAULT_LOCUSTFILE,
    _LogFollower,
    _LogMerger,
    check_loopback_url,
    locust_command,
    recommended_users,
    start_load,
    worker_command,
)
from cautious.measure.requestlog import FIELDS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://127.10.20.30", "https://127.10.20.30"),
        ("http://localhost:9000/api/", "http://localhost:9000/api"),
        ("http://LOCALHOST.:80", "http://LOCALHOST.:80"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::ffff:127.0.0.1]:8080", "http://[::ffff:127.0.0.1]:8080"),
        ("  http://127.0.0.1:1  ", "http://127.0.0.1:1"),
    ],
)
def test_loopback_urls_are_accepted(url: str, expected: str) -> None:
    assert check_loopback_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://0.0.0.0:8080",
        "http://[::]:8080",
        "http://[2001:db8::1]",
        "http://[::ffff:10.0.0.1]",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://127.0.0.1@example.com",
    ],
)
def test_other_hosts_are_refused_as_usage_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="not loopback") as caught:
        check_loopback_url(url)
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://127.0.0.1", "http://", "http://127.0.0.1:99999"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"load URL"):
        check_loopback_url(url)


def test_locust_command_is_headless_bounded_and_logs_requests(tmp_path: Path) -> None:
    command = locust_command("http://127.0.0.1:8080", 40, 12, 2, tmp_path, Path("/x/locustfile.py"))
    assert command[:3] == [sys.executable, "-m", "locust"]
    assert "--headless" in command
    assert "--only-summary" in command

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    user_file, plugin = value("-f").split(",")
    assert user_file == "/x/locustfile.py"
    assert plugin.endswith("pipeline/cautious/measure/locust_request_logger.py")
    assert Path(plugin).is_file()
    assert value("--host") == "http://127.0.0.1:8080"
    assert (value("-u"), value("-r"), value("-t")) == ("40", "40", "12s")
    assert value("--stop-timeout") == "2"
    assert value("--exit-code-on-error") == "0"
    assert value("--csv") == str(tmp_path / "locust")
    assert value("--logfile") == str(tmp_path / "locust.log")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "http://203.0.113.5:80"}, "not loopback"),
        ({"rate": 0.0}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"duration_s": -1.0}, "duration"),
        ({"users": 0}, "users"),
        ({"timeout_s": 0.0}, "timeout"),
        ({"timeout_s": float("inf")}, "timeout"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "url": "http://127.0.0.1:9",
        "rate": 10.0,
        "duration_s": 1.0,
        "users": 1,
        "timeout_s": 1.0,
        "out_dir": tmp_path / "out",
        **changes,
    }
    with pytest.raises(ConfigError, match=message):
        start_load(**arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_missing_locustfile_is_a_prerequisite_error(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError, match="not found"):
        start_load("http://127.0.0.1:9", 10, 1, 1, 1, tmp_path, locustfile=tmp_path / "no.py")


def test_a_comma_in_the_locustfile_path_is_refused(tmp_path: Path) -> None:
    odd = tmp_path / "a,b.py"
    odd.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="comma"):
        start_load("http://127.0.0.1:9", 10, 1, 1, 1, tmp_path, locustfile=odd)


def test_the_default_locustfile_ships_with_the_repo() -> None:
    assert DEFAULT_LOCUSTFILE == REPO / "sandbox" / "locustfile.py"
    assert DEFAULT_LOCUSTFILE.is_file()


def test_recommended_users_cover_a_slow_request_per_period() -> None:
    assert recommended_users(100) == 50
    assert recommended_users(1_000) == 250
    assert recommended_users(1_000) / 1_000 >= 0.25


def test_the_plugin_writes_the_request_log_header() -> None:
    # Read, not imported: importing the plugin imports locust, which patches this process.
    source = (REPO / "pipeline" / "cautious" / "measure" / "locust_request_logger.py").read_text(
        encoding="utf-8"
    )
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HEADER":
            assert ast.literal_eval(node.value) == FIELDS
            break
    else:
        pytest.fail("HEADER not found in the plugin")


def test_no_core_module_imports_locust() -> None:
    # Locust plugins (measure/locust_*.py) are loaded by a Locust subprocess, never imported.
    for path in (REPO / "pipeline").rglob("*.py"):
        if path.name.startswith("locust_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(
                name == "locust"
                or name.startswith("locust.")
                or name.rpartition(".")[2].startswith("locust_")
                for name in names
            ), f"{path} imports {names}"


def test_progress_counts_whole_rows_only(tmp_path: Path) -> None:
    log = tmp_path / "requests.csv"
    log.write_text(
        ",".join(FIELDS)
        + "\n100.0,1.5,200,GET,/,,a,v1\n"
        + '100.5,2000.0,0,GET,/items,"timed out, twice",,\n'
        + "101.0,3.0,503,POST,/items,HTTPError,a,v1\n"
        + "101.5,1.0,20",  # a row still being written
        encoding="utf-8",
    )
    follower = _LogFollower(log)
    follower.poll()
    assert (follower.sent, follower.failed) == (3, 2)
    assert (follower.first_start, follower.last_start) == (100.0, 101.0)
    with log.open("a", encoding="utf-8") as handle:
        handle.write("0,GET,/,,a,v1\n")
    follower.poll()
    assert (follower.sent, follower.failed, follower.last_start) == (4, 2, 101.5)


def test_progress_before_the_log_exists_is_zero(tmp_path: Path) -> None:
    follower = _LogFollower(tmp_path / "not-yet.csv")
    follower.poll()
    assert (follower.sent, follower.failed) == (0, 0)


def test_progress_line_reads_well() -> None:
    line = load.LoadProgress(sent=1180, failed=3, elapsed_s=12.04, rate=99.14).line(100)
    assert line == "load 12.0 s: 1,180 sent, 3 failed, 99.1 req/s (target 100)"


def test_a_distributed_master_binds_loopback_and_waits_for_its_workers(tmp_path: Path) -> None:
    command = locust_command(
        "http://127.0.0.1:8080", 40, 12, 2, tmp_path, Path("/x/l.py"), workers=3, master_port=5599
    )

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert "--master" in command and "--headless" in command
    assert (value("--master-bind-host"), value("--master-bind-port")) == ("127.0.0.1", "5599")
    assert value("--expect-workers") == "3"
    assert int(value("--expect-workers-max-wait")) > 0
    assert (value("-u"), value("-t")) == ("40", "12s")


def test_a_worker_connects_to_the_master_on_loopback_with_the_plugin(tmp_path: Path) -> None:
    command = worker_command(Path("/x/l.py"), 5599, tmp_path, 2)

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert "--worker" in command and "--master" not in command
    assert (value("--master-host"), value("--master-port")) == ("127.0.0.1", "5599")
    assert value("-f").split(",")[1].endswith("locust_request_logger.py")
    assert value("--logfile") == str(tmp_path / "locust-worker-2.log")
    assert "-u" not in command and "-t" not in command  # the master decides those


def test_a_plain_run_has_no_master(tmp_path: Path) -> None:
    command = locust_command("http://127.0.0.1:8080", 40, 12, 2, tmp_path, Path("/x/l.py"))
    assert "--master" not in command and "--expect-workers" not in command


@pytest.mark.parametrize(("users", "workers"), [(10, 0), (2, 3), (100, 33)])
def test_worker_counts_beyond_the_users_or_the_cap_are_refused(
    tmp_path: Path, users: int, workers: int
) -> None:
    with pytest.raises(ConfigError, match="workers"):
        start_load("http://127.0.0.1:9", 10, 1, users, 1, tmp_path / "out", workers=workers)
    assert not (tmp_path / "out").exists()


HEADER_LINE = ",".join(FIELDS) + "\n"


def test_workers_logs_are_merged_whole_rows_once_each(tmp_path: Path) -> None:
    parts = [tmp_path / "requests-worker-1.csv", tmp_path / "requests-worker-2.csv"]
    parts[0].write_text(HEADER_LINE + "1.0,1.0,200,GET,/,,a,v1\n2.0,1.0,20")
    merged = tmp_path / "requests.csv"
    merger = _LogMerger(parts, merged)
    with parts[0].open("a") as handle:
        handle.write("0,GET,/,,a,v1\n3.0,1.0,200,GET,/,,a,v1\n4.0,1.0")  # the last row cut off
    parts[1].write_text(HEADER_LINE + '1.5,2000.0,0,GET,/,"refused, twice",,\n')
    merger.close()

    rows = merged.read_text().splitlines()
    assert rows[0] == HEADER_LINE.strip()
    assert sorted(rows[1:]) == [
        "1.0,1.0,200,GET,/,,a,v1",
        '1.5,2000.0,0,GET,/,"refused, twice",,',
        "2.0,1.0,200,GET,/,,a,v1",
        "3.0,1.0,200,GET,/,,a,v1",
    ]
    assert not any(part.exists() for part in parts)


def test_a_worker_log_with_another_header_fails_the_merge(tmp_path: Path) -> None:
    part = tmp_path / "requests-worker-1.csv"
    part.write_text("when,what\n1.0,x\n")
    merger = _LogMerger([part], tmp_path / "requests.csv")
    with pytest.raises(SandboxError, match="not a request log"):
        merger.close()
    assert part.exists()  # kept for a look
