"""Reading files and documents from outside: every bad one is one line (exit 2), never a
traceback, a hang or a memory blow-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cautious.exceptions import ConfigError
from cautious.inputs import (
    MAX_DEPTH,
    clip,
    finite_number,
    folder_to_write,
    load_json,
    load_yaml,
    read_text,
    shorten,
)


def refusal(call: object) -> str:
    """The one line a call is refused with."""
    assert callable(call)
    with pytest.raises(ConfigError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and len(message) <= 300
    return message


def test_a_regular_utf8_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("hello: wörld\n", encoding="utf-8")
    assert read_text(path, "the configuration", 100) == "hello: wörld\n"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in refusal(lambda: read_text(fifo, "report", 100))


def test_a_folder_and_a_device_are_not_files(tmp_path: Path) -> None:
    assert "is a folder" in refusal(lambda: read_text(tmp_path, "report", 100))
    assert "character device" in refusal(lambda: read_text("/dev/zero", "report", 100))


def test_a_binary_file_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "picture.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "is not UTF-8 text (byte 0 is 0x89)" in refusal(lambda: read_text(path, "c", 100))


def test_a_file_larger_than_allowed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("x" * 101)
    assert "larger than the 100 bytes allowed" in refusal(lambda: read_text(path, "c", 100))


def test_a_missing_file_an_overlong_path_and_a_nul_are_named(tmp_path: Path) -> None:
    assert "no file at" in refusal(lambda: read_text(tmp_path / "absent", "c", 100))
    long_path = tmp_path / ("x" * 5000)
    assert "cannot be opened (File name too long)" in refusal(lambda: read_text(long_path, "c", 9))
    assert "\\x00" in refusal(lambda: read_text(f"{tmp_path}/a\0b", "c", 9))


def test_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*_: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # root reads any mode bits, so deny at the call
    assert "is not readable (permission denied)" in refusal(lambda: read_text(tmp_path, "c", 9))


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "aliases (*name) are not accepted" in refusal(lambda: load_yaml(bomb, "c.yaml"))


def test_a_duplicate_yaml_key_names_both_lines() -> None:
    text = "cluster: {instances: 2}\nlb: {}\ncluster: {instances: 3}\n"
    message = refusal(lambda: load_yaml(text, "c.yaml"))
    assert message.startswith("c.yaml:3: ")
    assert "duplicate key 'cluster' (first on line 1)" in message


def test_yaml_nested_thousands_deep_is_refused_at_the_depth_limit() -> None:
    flow = "a: " + "[" * 5000 + "]" * 5000
    block = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5))
    assert f"nested deeper than {MAX_DEPTH} levels" in refusal(lambda: load_yaml(flow, "c"))
    assert f"nested deeper than {MAX_DEPTH} levels" in refusal(lambda: load_yaml(block, "c"))


def test_a_merge_key_written_in_place_still_merges() -> None:
    assert load_yaml("<<: {a: 1}\nb: 2\n", "c.yaml") == {"a": 1, "b": 2}


def test_python_tags_are_not_constructed() -> None:
    assert "not valid YAML" in refusal(lambda: load_yaml("!!python/object:os.system x", "c"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": NaN}', "NaN is not a number JSON allows"),
        ('{"a": Infinity}', "Infinity is not a number JSON allows"),
        ('{"a": 1e999}', "'1e999' is too large for a number"),
        ('{"a": ' + "9" * 5000 + "}", "an integer is too long"),
        ('{"a": 1', "r.json:1: not valid JSON (Expecting ',' delimiter"),
        ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    ],
)
def test_json_without_finite_numbers_or_bounded_depth_is_refused(text: str, problem: str) -> None:
    assert problem in refusal(lambda: load_json(text, "r.json"))


def test_json_within_the_limits_is_read() -> None:
    assert load_json('{"a": [1, 2.5, "x", null]}', "r.json") == {"a": [1, 2.5, "x", None]}


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "1e12", "soon", ""])
def test_a_flag_number_must_be_finite_and_within_its_range(text: str) -> None:
    message = refusal(lambda: finite_number("--duration", text, low=1, high=86_400, unit=" s"))
    assert message.startswith("--duration takes a number from 1 to 86400 s, not ")


def test_long_values_are_clipped_in_the_middle() -> None:
    assert clip("abcdefghij", 5) == "ab…ij"
    assert shorten("x" * 1000) == "'" + "x" * 28 + "…" + "x" * 29 + "'"
    assert shorten("short") == "'short'"


def test_a_report_folder_must_be_a_folder_or_not_there_yet(tmp_path: Path) -> None:
    assert folder_to_write(tmp_path / "new" / "deeper", "--report") == tmp_path / "new" / "deeper"
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    assert "fifo is a FIFO, not a folder" in refusal(
        lambda: folder_to_write(tmp_path / "fifo", "-r")
    )
    assert "file is a file, not a folder" in refusal(
        lambda: folder_to_write(tmp_path / "file" / "below", "-r")
    )
    assert "-r takes the path of a folder, not ''" in refusal(lambda: folder_to_write("", "-r"))
