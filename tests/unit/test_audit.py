"""``cautious audit`` on the fake backend: the journal's chain, and the journal against what
runs — every change made outside a journaled rollout is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cautious.audit import FORCED_NOTE, audit
from cautious.backends.base import InstanceSpec
from cautious.exceptions import Drifted
from cautious.rollout.journal import JOURNAL_FILE, line_digest

from tests.unit.fakes import FakeCluster, fake_cluster


def deployed(tmp_path: Path) -> FakeCluster:
    """A fake cluster brought up on v1, deployed to v2 and rolled back to v1."""
    cluster = fake_cluster(tmp_path)
    cluster.pipeline().deploy("v2")
    cluster.pipeline().rollback()
    return cluster


def lines(cluster: FakeCluster) -> list[str]:
    return cluster.journal.text().splitlines()


def rewrite(cluster: FakeCluster, new_lines: list[str]) -> None:
    cluster.backend.state_store().replace(JOURNAL_FILE, "\n".join(new_lines) + "\n")


def forge(cluster: FakeCluster, number: int, **changes: object) -> None:
    """Change record ``number`` and recompute the chain after it, as a careful forger would."""
    records = [json.loads(line) for line in lines(cluster)]
    records[number - 1].update(changes)
    forged: list[str] = []
    for record in records:
        record["prev"] = line_digest(forged[-1]) if forged else ""
        forged.append(json.dumps(record, sort_keys=True))
    rewrite(cluster, forged)


def findings(cluster: FakeCluster) -> list[str]:
    return [finding.line() for finding in audit(cluster.journal, cluster.backend).findings]


def test_the_audit_passes_after_normal_rollouts(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    result = audit(cluster.journal, cluster.backend)
    assert result.clean, result.findings
    assert result.records == len(lines(cluster)) and result.occupants == 5  # 4 and the LB


def test_every_record_carries_its_actor_and_the_hash_of_the_line_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAUTIOUS_ACTOR", "release-bot")
    written = lines(deployed(tmp_path))
    records = [json.loads(line) for line in written]
    assert records[0]["prev"] == ""
    assert [r["prev"] for r in records[1:]] == [line_digest(line) for line in written[:-1]]
    assert {r["actor"] for r in records[1:]} == {"release-bot"}


def test_a_container_started_by_hand_on_the_cluster_network_is_named(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    cluster.backend.start_by_hand("debug-shell", "sha256:" + "e" * 64)
    assert findings(cluster) == [
        "stranger: debug-shell: runs eeeeeeeeeeee on the cluster's network, "
        "but Cautious did not start it"
    ]


def test_an_instance_whose_image_was_replaced_outside_cautious_is_named(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    cluster.backend.replace_image("sample-2", "sha256:" + "b" * 64)
    [found] = findings(cluster)
    assert found.startswith("image: sample-2: runs image bbbbbbbbbbbb, but the journal says v1")


def test_an_instance_started_outside_a_journaled_rollout_is_named(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    cluster.backend.start(InstanceSpec("sample-9", cluster.release("v2"), port=8000))
    [found] = findings(cluster)
    assert found.startswith("unjournaled: sample-9: runs ")


def test_a_journal_edited_by_hand_breaks_the_chain_at_the_next_record(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    edited = lines(cluster)
    edited[1] = edited[1].replace('"v2"', '"v9"')
    rewrite(cluster, edited)
    [found] = findings(cluster)
    assert found.startswith("chain: line 3: 'prev' is not the SHA-256 of line 2: line 2 was edited")


def test_a_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    rewrite(cluster, lines(cluster)[:2] + lines(cluster)[3:])
    assert [found.split(":")[1] for found in findings(cluster)] == [" line 3"]


def test_a_forged_record_passes_the_chain_but_not_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAUTIOUS_AUDIT_KEY", "k3y")
    cluster = deployed(tmp_path)
    assert findings(cluster) == []
    forge(cluster, 2, who="mallory")
    forged = findings(cluster)  # line 2, and every later line whose 'prev' the forger rewrote
    assert forged[0] == "hmac: line 2: its HMAC does not match: forged or edited"
    assert len(forged) == len(lines(cluster)) - 1
    monkeypatch.delenv("CAUTIOUS_AUDIT_KEY")
    assert findings(cluster) == []  # without a key a careful forgery is not detectable


def test_with_a_key_an_unsigned_record_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = deployed(tmp_path)
    monkeypatch.setenv("CAUTIOUS_AUDIT_KEY", "k3y")
    cluster.journal.note("up", instances=[])
    assert "hmac: line 1: unsigned: forged or edited" in findings(cluster)


def test_an_unfinished_rollout_defers_the_comparison_of_instances(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    cluster.journal.begin(strategy="rolling", **{"from": {"label": "v1"}, "to": {"label": "v2"}})
    cluster.backend.replace_image("sample-1", "sha256:" + "b" * 64)
    result = audit(cluster.journal, cluster.backend)
    assert result.clean and "is unfinished" in result.notes[0]


def test_a_deploy_refuses_to_start_on_drift(tmp_path: Path) -> None:
    cluster = deployed(tmp_path)
    cluster.backend.start_by_hand("debug-shell", "sha256:" + "e" * 64)
    before = lines(cluster)
    with pytest.raises(Drifted, match=r"1 finding\(s\), first: stranger: debug-shell"):
        cluster.pipeline().deploy("v2")
    assert lines(cluster) == before and set(cluster.releases().values()) == {"v1"}


def test_a_forced_deploy_is_journaled_and_accepts_the_broken_chain_before_it(
    tmp_path: Path,
) -> None:
    cluster = deployed(tmp_path)
    edited = lines(cluster)
    edited[1] = edited[1].replace('"v2"', '"v9"')
    rewrite(cluster, edited)
    result = cluster.pipeline().deploy("v2", force=True)
    assert result is not None and result.succeeded
    [forced] = cluster.journal.notes(FORCED_NOTE)
    assert forced["findings"][0].startswith("chain: line 3")
    after = audit(cluster.journal, cluster.backend)
    assert after.clean and after.accepted[0].startswith("chain: line 3")


def test_a_host_that_does_not_answer_is_a_finding_and_stops_the_next_deploy(
    tmp_path: Path,
) -> None:
    cluster = deployed(tmp_path)
    cluster.backend.silent.add("sample-2")
    assert findings(cluster) == [
        "unreachable: fake-host: does not answer, so what runs in sample-2 is unknown; "
        "bring the host back, then audit again"
    ]
    with pytest.raises(Drifted, match="unreachable: fake-host"):
        cluster.pipeline().deploy("v2")
    cluster.backend.silent.clear()
    assert findings(cluster) == []
