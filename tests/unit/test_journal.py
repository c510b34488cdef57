"""The journal: append-only rollout records, crash leftovers, the lock, start-up statistics."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from cautious.exceptions import ConfigError, LockHeld
from cautious.redaction import REDACTED, remember
from cautious.rollout.journal import Journal, actor, startup_stats


def begin(journal: Journal, source: str = "v1", target: str = "v2") -> str:
    return journal.begin(
        strategy="rolling",
        **{"from": {"label": source, "digest": "sha256:a"}, "to": {"label": target, "digest": "b"}},
        instances=[{"name": "app-1", "release": source, "state": "running"}],
    )


def test_a_rollout_reads_back_with_its_steps_and_outcome(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    rollout_id = begin(journal)
    journal.step(rollout_id, name="retire app-1", outcome="ok")
    journal.end(rollout_id, "succeeded", reason="")
    [record] = journal.rollouts()
    assert (record.from_release, record.to_release, record.outcome) == ("v1", "v2", "succeeded")
    assert [step["name"] for step in record.steps] == ["retire app-1"]
    assert record.summary()["duration_s"] is not None


def test_a_rollout_without_an_end_is_unfinished(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    done = begin(journal)
    journal.end(done, "succeeded")
    crashed = begin(journal, "v2", "v3")
    assert [record.id for record in journal.unfinished()] == [crashed]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    begin(journal)
    with journal.path.open("a") as handle:
        handle.write('{"type": "step", "id": ')
    assert len(journal.rollouts()) == 1


def test_the_last_good_release_ignores_failed_rollouts(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    journal.end(begin(journal, "v1", "v2"), "succeeded")
    journal.end(begin(journal, "v2", "bad"), "rolled-back")
    assert journal.last_good_release() == "v2"


def test_the_actor_prefers_the_ci_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAUTIOUS_ACTOR", raising=False)
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert actor() == "octocat"


def _hold_lock(folder: str, seconds: float) -> None:
    with Journal(Path(folder), "c").lock():
        time.sleep(seconds)


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path: Path) -> None:
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_lock, args=(str(tmp_path), 5)
    )
    holder.start()
    journal = Journal(tmp_path, "c")
    deadline = time.monotonic() + 5
    while not (journal.lock_path.exists() and journal.lock_path.read_text()):
        assert time.monotonic() < deadline, "the other process never took the lock"
        time.sleep(0.05)
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"), journal.lock():
            pass
    finally:
        holder.kill()
        holder.join(5)


def test_the_lock_is_free_again_when_its_holder_dies(tmp_path: Path) -> None:
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_lock, args=(str(tmp_path), 30)
    )
    holder.start()
    journal = Journal(tmp_path, "c")
    deadline = time.monotonic() + 5
    while not (journal.lock_path.exists() and journal.lock_path.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.join(5)
    with journal.lock():
        pass


def test_startup_statistics_show_the_tail_per_release(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    rollout_id = begin(journal)
    samples = [
        {"instance": f"app-{i}", "release": "v2", "seconds": s}
        for i, s in enumerate([1.0, 1.1, 1.2, 1.3, 9.0])
    ]
    journal.step(rollout_id, name="start", outcome="ok", ready_s=samples)
    [stats] = startup_stats(journal.rollouts())
    assert (stats.release, stats.count) == ("v2", 5)
    assert (stats.min_s, stats.median_s, stats.max_s) == (1.0, 1.2, 9.0)
    assert stats.p99_s == 9.0  # nearest rank: the slowest starter is the tail
    assert stats.p90_s == 9.0


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2]", "not a journal record (a JSON object with a 'type')"),
        ('"begin"', "not a journal record"),
        ('{"type": "begin", "time": "yesterday", "id": "x"}', "'time' is not a number"),
        ('{"type": "step", "time": 1}', "a step record without a text 'id'"),
        ('{"type": "begin", "time": 1, "id": "x", "who": "a", "strategy": "rolling"}', "'from'"),
        (
            '{"type": "end", "time": 1, "id": "x", "outcome": "exploded"}',
            "'outcome' unlike",
        ),
        ('{"type": "step", "time": 1, "id": "x", "ready_s": [{"seconds": 1}]}', "'ready_s'"),
        ('{"type": "step", "time": NaN, "id": "x"}', "NaN is not a number JSON allows"),
        ("[" * 500 + "]" * 500, "nested deeper than"),
    ],
)
def test_an_odd_line_in_the_middle_is_bad_input_naming_its_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    journal = Journal(tmp_path, "c")
    begin(journal)
    with journal.path.open("a") as handle:
        handle.write(line + "\n")
    journal.end(begin(journal), "succeeded")
    with pytest.raises(ConfigError) as error:
        journal.rollouts()
    message = str(error.value)
    assert "journal.jsonl:2: " in message and problem in message
    assert "\n" not in message and len(message) <= 300


def test_a_journal_that_is_not_utf8_text_is_bad_input(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    begin(journal)
    with journal.path.open("ab") as handle:
        handle.write(b"\xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        journal.rollouts()


def test_notes_are_read_through_the_same_checks(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    journal.note("measurement", verdict="pass")
    with journal.path.open("a") as handle:
        handle.write("[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ConfigError, match=r"journal\.jsonl:2: nested deeper than"):
        journal.notes("measurement")


def test_records_of_other_kinds_are_left_to_their_readers(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "c")
    journal.end(begin(journal), "succeeded")
    journal.note("measurement", verdict="pass")
    assert [record.outcome for record in journal.rollouts()] == ["succeeded"]


def test_a_secret_value_never_reaches_the_journal(tmp_path: Path) -> None:
    remember(["planted-journal-secret"])
    journal = Journal(tmp_path, "c")
    journal.end(begin(journal), "rolled-back", reason="the app logged planted-journal-secret")
    assert "planted-journal-secret" not in journal.path.read_text()
    [record] = journal.rollouts()
    assert record.end is not None and record.end["reason"] == f"the app logged {REDACTED}"
