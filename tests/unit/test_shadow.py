"""Shadow comparison: normalised bodies, mismatch ratios per endpoint, and the gate."""

from __future__ import annotations

import json
from pathlib import Path

from cautious.measure.shadow import ShadowPair, ShadowRules, compare, normalise, read_shadow_log

RULES = ShadowRules(
    ignore_fields=("release", "instance", "users.*.updated"),
    ignore_patterns=(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?",),
)


def _pair(name: str, body: object, shadow: object, status: int = 200, shadow_status: int = 200):
    return ShadowPair(
        t=1.0,
        method="GET",
        name=name,
        path=name,
        status=status,
        body=json.dumps(body),
        shadow_status=shadow_status,
        shadow_body=json.dumps(shadow),
    )


def test_json_bodies_compare_as_data_without_ignored_fields() -> None:
    left = normalise('{"b": 1, "a": 2, "release": "v1"}', RULES)
    right = normalise('{"a":2,"b":1,"release":"v2"}', RULES)
    assert left == right == {"a": 2, "b": 1}


def test_a_star_ignores_a_field_in_every_list_item() -> None:
    body = {"users": [{"id": "1", "updated": "x"}, {"id": "2", "updated": "y"}]}
    assert normalise(json.dumps(body), RULES) == {"users": [{"id": "1"}, {"id": "2"}]}


def test_patterns_mask_timestamps_in_strings_and_plain_text() -> None:
    assert normalise('{"at": "2026-12-01T10:00:00Z"}', RULES) == {"at": "<ignored>"}
    assert normalise("seen 2026-12-01T10:00:00", RULES) == "seen <ignored>"


def test_a_release_that_differs_only_in_ignored_fields_passes() -> None:
    pairs = [_pair("/", {"release": "v1"}, {"release": "v2"}) for _ in range(40)]
    report = compare(pairs, RULES, max_mismatch_ratio=0.0, min_compared=30)
    assert report.verdict == "pass"
    assert report.endpoints[0].mismatch_ratio == 0.0


def test_one_endpoint_answering_differently_fails_with_examples() -> None:
    same = [_pair("/users", {"users": []}, {"users": []}) for _ in range(30)]
    subtle = [_pair("/users/[id]", {"name": "Zoë"}, {"name": "Zoe"}) for _ in range(3)]
    plain = [_pair("/users/[id]", {"name": "Ada"}, {"name": "Ada"}) for _ in range(7)]
    report = compare(same + subtle + plain, RULES, max_mismatch_ratio=0.01, min_compared=30)
    assert report.verdict == "fail"
    by_name = {item.endpoint: item for item in report.endpoints}
    assert by_name["GET /users/[id]"].mismatch_ratio == 0.3
    assert by_name["GET /users"].mismatched == 0
    assert "GET /users/[id] answered differently in 3 of 10" in report.reason
    assert json.loads(by_name["GET /users/[id]"].examples[0]["shadow_body"]) == {"name": "Zoe"}


def test_a_different_status_is_a_mismatch_and_no_answer_too() -> None:
    pairs = [_pair("/", {}, {}, shadow_status=500), _pair("/", {}, {}, shadow_status=0)]
    report = compare(pairs, RULES, max_mismatch_ratio=0.5, min_compared=1)
    assert report.endpoints[0].mismatched == 2 and report.verdict == "fail"


def test_too_few_comparisons_is_not_enough_data() -> None:
    report = compare([_pair("/", {}, {})], RULES, max_mismatch_ratio=0.0, min_compared=30)
    assert report.verdict == "not-enough-data"
    assert "1 mirrored requests compared, 30 needed" in report.reason


def test_the_shadow_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "shadow.jsonl"
    pair = {"t": 1, "method": "GET", "name": "/", "path": "/", "status": 200, "shadow_status": 200}
    log.write_text(json.dumps(pair) + "\n" + '{"t": 2, "meth')
    assert [item.path for item in read_shadow_log(log)] == ["/"]
    assert read_shadow_log(tmp_path / "absent.jsonl") == []
    assert compare([], RULES, max_mismatch_ratio=0, min_compared=1).to_dict()["compared"] == 0
