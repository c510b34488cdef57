"""The shell scripts that move releases on a host, run here with /bin/sh in a temporary root."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from cautious.backends.ssh.artifact import ArtifactStore
from cautious.backends.ssh.layout import (
    EXIT_DIGEST_MISMATCH,
    EXIT_RELEASE_MISSING,
    Layout,
    parse_instance_lines,
    release_dir_name,
)


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def shipped(tmp_path: Path, layout: Layout, label: str, greeting: str) -> str:
    """Build a release from a tiny context, upload it (a copy), verify and unpack it."""
    context = tmp_path / f"context-{label}"
    context.mkdir(exist_ok=True)
    (context / "app.py").write_text(f"print({greeting!r})\n")
    release = ArtifactStore(tmp_path / "store").build(context, label, {}, ["true"], None)
    name = release_dir_name(label, release.digest)
    assert sh(layout.check_before_upload(name, 1)).returncode == 0
    Path(layout.upload_path(name)).write_bytes(Path(release.image).read_bytes())
    unpacked = sh(layout.unpack(name, release.digest))
    assert unpacked.returncode == 0, unpacked.stderr
    return name


def link(path: Path) -> str:
    return str(path.readlink())


def test_a_release_is_unpacked_only_when_its_sha256_matches(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "srv"))
    name = "v1-000000000000"
    assert sh(layout.check_before_upload(name, 1)).returncode == 0
    Path(layout.upload_path(name)).write_bytes(b"not the release")
    result = sh(layout.unpack(name, "sha256:" + hashlib.sha256(b"the release").hexdigest()))
    assert result.returncode == EXIT_DIGEST_MISMATCH
    assert "upload corrupted" in result.stderr
    assert not Path(layout.release(name)).exists()
    assert not Path(layout.upload_path(name)).exists()


def test_a_shipped_release_is_a_directory_with_its_digest_and_is_not_shipped_twice(
    tmp_path: Path,
) -> None:
    layout = Layout(str(tmp_path / "srv"))
    name = shipped(tmp_path, layout, "v1", "one")
    release = Path(layout.release(name))
    assert (release / "app.py").read_text() == "print('one')\n"
    assert (release / ".complete").read_text().startswith("sha256:")
    assert Layout.is_present(sh(layout.check_before_upload(name, 1)).stdout)


def test_going_live_switches_the_instance_link_and_the_host_link_once_all_agree(
    tmp_path: Path,
) -> None:
    layout = Layout(str(tmp_path / "srv"))
    one, two = shipped(tmp_path, layout, "v1", "one"), shipped(tmp_path, layout, "v2", "two")
    for port in (8000, 8001):
        assert sh(layout.switch(port, one, {"APP_PORT": str(port)})).returncode == 0
    host_current = tmp_path / "srv" / "current"
    assert link(host_current) == layout.release(one)

    assert sh(layout.switch(8000, two, {"APP_PORT": "8000"})).returncode == 0
    assert link(tmp_path / "srv/instances/8000/current") == layout.release(two)
    assert link(host_current) == layout.release(one)  # 8001 still runs v1: the host is mixed
    assert (tmp_path / "srv/instances/8000/instance.env").read_text() == "APP_PORT=8000\n"

    assert sh(layout.forget(8001)).returncode == 0  # 8001 stopped: only v2 is left
    assert link(host_current) == layout.release(two)
    assert not (tmp_path / "srv/instances/8001/current").exists()


def test_going_live_on_a_release_the_host_lacks_fails_with_its_own_exit_code(
    tmp_path: Path,
) -> None:
    layout = Layout(str(tmp_path / "srv"))
    result = sh(layout.switch(8000, "v9-000000000000", {}))
    assert result.returncode == EXIT_RELEASE_MISSING
    assert not (tmp_path / "srv/instances/8000/current").exists()


def test_pruning_keeps_the_newest_releases_and_every_release_a_link_names(
    tmp_path: Path,
) -> None:
    layout = Layout(str(tmp_path / "srv"))
    names = [shipped(tmp_path, layout, f"v{index}", str(index)) for index in range(1, 6)]
    for age, name in enumerate(reversed(names)):  # v5 newest … v1 oldest
        stamp = 1_700_000_000 - age * 60
        sh(f"touch -d @{stamp} {layout.release(name)}")
    assert sh(layout.switch(8000, names[0], {})).returncode == 0  # v1 is live (and touched)
    sh(f"touch -d @1600000000 {layout.release(names[0])}")
    pruned = sh(layout.prune(keep=2))
    left = sorted(path.name for path in (tmp_path / "srv/releases").iterdir())
    assert left == sorted([names[0], names[3], names[4]])
    assert sorted(pruned.stdout.split()) == sorted(names[1:3])


def test_instance_lines_carry_port_target_digest_and_status() -> None:
    text = "8000|/srv/s/releases/v2-abc-def012345678|sha256:ff|0\n8001|/x/v1-0123|sha256:ee|3\n"
    first, second = parse_instance_lines(text + "noise\n")
    assert (first.port, first.label, first.digest, first.status_code) == (
        8000,
        "v2-abc",
        "sha256:ff",
        0,
    )
    assert (second.label, second.status_code) == ("v1", 3)
