"""State with the cluster: the lock and the journal live in the backend's store, so every
checkout that reaches the cluster sees one lock and one history."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cautious.backends.state import DirectoryStore, MemoryStore, store_of
from cautious.deploy import DeployPipeline
from cautious.exceptions import ConfigError, LockHeld
from cautious.rollout.journal import LEASE_S, Holder, Journal

from tests.unit.fakes import fake_cluster

LOCK = "rollout.lock"


def a_dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


@pytest.mark.parametrize("kind", ["memory", "folder"])
def test_a_store_creates_a_file_only_once(kind: str, tmp_path: Path) -> None:
    store = MemoryStore() if kind == "memory" else DirectoryStore(tmp_path)
    assert store.create("f", "first")
    assert not store.create("f", "second")
    store.append("f", "+more")
    assert store.read("f", 100) == "first+more"
    store.replace("f", "new")
    assert store.read("f", 100) == "new"
    store.remove("f")
    assert store.read("f", 100) == ""


def test_a_store_refuses_a_file_over_its_bound() -> None:
    store = MemoryStore()
    store.append("journal.jsonl", "x" * 100)
    with pytest.raises(ConfigError, match="over 10 bytes"):
        store.read("journal.jsonl", 10)


def test_the_fake_backend_keeps_its_state_in_memory_and_others_fall_back_to_a_folder(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path)
    assert store_of(cluster.backend, tmp_path) is cluster.backend.state_store()
    assert isinstance(store_of(object(), tmp_path), DirectoryStore)


def test_two_checkouts_of_one_cluster_share_its_lock_naming_the_holder(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    other_checkout = cluster.config.model_copy(update={"state_dir": tmp_path / "elsewhere"})
    with (
        Journal.of(cluster.config, cluster.backend).lock() as holder,
        pytest.raises(LockHeld) as refused,
    ):
        Journal.of(other_checkout, cluster.backend).lock().__enter__()
    message = str(refused.value)
    assert f"pid {holder.pid}" in message and holder.who in message and holder.host in message
    assert "since " + time.strftime("%Y-%m-%d", time.localtime(holder.since)) in message


def test_the_holder_names_its_ci_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    assert "CI run https://github.com/acme/shop/actions/runs/42" in Holder.me().describe()


def test_a_holder_whose_process_died_on_this_machine_is_taken_over(tmp_path: Path) -> None:
    store = MemoryStore()
    dead = dataclasses.replace(Holder.me(), pid=a_dead_pid())
    store.create(LOCK, dead.text())
    with Journal(tmp_path, "c", store).lock() as holder:
        assert holder.pid == os.getpid()
    assert store.read(LOCK, 4096) == ""


def test_a_holder_elsewhere_is_alive_while_it_renews_and_dead_after_its_lease(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    elsewhere = dataclasses.replace(Holder.me(), host="ci-7", machine="ci-7 pid:[1]")
    store.create(LOCK, elsewhere.text())
    with pytest.raises(LockHeld, match=r"held by .* on ci-7"):
        Journal(tmp_path, "c", store).lock().__enter__()
    store.replace(LOCK, dataclasses.replace(elsewhere, beat=time.time() - LEASE_S - 1).text())
    with Journal(tmp_path, "c", store).lock():
        pass


def test_a_lock_that_stays_without_a_holder_record_is_taken_over(tmp_path: Path) -> None:
    store = MemoryStore()
    store.create(LOCK, "pid 4711, someone, since 10:00:00")  # an older version's lock file
    with Journal(tmp_path, "c", store).lock() as holder:
        assert Holder.parse(store.read(LOCK, 4096)) == holder


def test_a_rollback_from_another_checkout_goes_back_to_what_the_first_replaced(
    tmp_path: Path,
) -> None:
    cluster = fake_cluster(tmp_path)
    first = cluster.pipeline()
    result = first.deploy("v2")
    assert result is not None and result.succeeded
    other_checkout = cluster.config.model_copy(update={"state_dir": tmp_path / "elsewhere"})
    second = DeployPipeline(other_checkout, say=cluster.said.append, sandbox=cluster.sandbox)
    back = second.rollback()
    assert (back.from_release.label, back.to_release.label) == ("v2", "v1")
    assert set(cluster.releases().values()) == {"v1"}
    assert not (tmp_path / "elsewhere").exists()  # nothing was kept in the checkout
