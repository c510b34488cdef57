"""Files stages hand each other: a growing log read by whole lines, JSON never half-written."""

from __future__ import annotations

from pathlib import Path

from cautious.files import LineFollower, read_json_object, write_json_atomic


def test_a_follower_hands_out_whole_lines_once_and_waits_for_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "growing.log"
    follower = LineFollower(log)
    assert follower.new_lines() == []  # not there yet
    log.write_bytes(b"one\ntw")
    assert follower.new_lines() == ["one"]
    with log.open("ab") as handle:
        handle.write(b"o\nthree\n")
    assert follower.new_lines() == ["two", "three"]
    assert follower.new_lines() == []


def test_json_is_written_whole_and_read_back_only_when_it_is_an_object(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    assert read_json_object(target) is None
    write_json_atomic(target, {"outcome": "succeeded", "steps": [1, 2]})
    assert read_json_object(target) == {"outcome": "succeeded", "steps": [1, 2]}
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]
    target.write_text("[1, 2]", encoding="utf-8")
    assert read_json_object(target) is None
    target.write_text("{half", encoding="utf-8")
    assert read_json_object(target) is None
