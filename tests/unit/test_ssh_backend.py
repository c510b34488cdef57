"""The ssh backend's pure parts: the inventory, reproducible release tarballs, command
templates, the ``ssh`` configuration, and pinned host keys."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import paramiko
import pytest
from cautious.backends import make_backend
from cautious.backends.ssh.artifact import ArtifactStore, release_env_text, run_script
from cautious.backends.ssh.backend import Commands, SshBackend
from cautious.backends.ssh.inventory import Inventory
from cautious.backends.ssh.keys import PinnedKeys, generate_key_pair, known_hosts_name
from cautious.config import Config, SshConfig, SshHostConfig
from cautious.exceptions import ConfigError, HostKeyError
from pydantic import ValidationError


def inventory(*counts: int) -> Inventory:
    hosts = [
        SshHostConfig(address=f"10.0.0.{index}", instances=count)
        for index, count in enumerate(counts, 1)
    ]
    return Inventory.from_config(SshConfig(hosts=hosts), "sample", 8000)


def test_instances_are_dealt_round_robin_running_ports_first_then_spare_ones() -> None:
    placed = [(p.slot, p.host.address, p.port) for p in inventory(2, 2, 2).placements]
    assert placed[:6] == [
        ("sample-1", "10.0.0.1", 8000),
        ("sample-2", "10.0.0.2", 8000),
        ("sample-3", "10.0.0.3", 8000),
        ("sample-4", "10.0.0.1", 8001),
        ("sample-5", "10.0.0.2", 8001),
        ("sample-6", "10.0.0.3", 8001),
    ]
    assert [port for _, _, port in placed[6:]] == [8002, 8002, 8002, 8003, 8003, 8003]


def test_hosts_of_different_sizes_still_list_every_running_port_before_any_spare() -> None:
    cluster = inventory(1, 3)
    assert cluster.running_count == 4
    first = [(p.host.address, p.port) for p in cluster.placements[:4]]
    assert sorted(first) == [
        ("10.0.0.1", 8000),
        ("10.0.0.2", 8000),
        ("10.0.0.2", 8001),
        ("10.0.0.2", 8002),
    ]


def test_a_release_tarball_is_reproducible_and_changes_with_its_environment(
    tmp_path: Path,
) -> None:
    context = tmp_path / "app"
    (context / "__pycache__").mkdir(parents=True)
    (context / "app.py").write_text("print('hi')\n")
    (context / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    store = ArtifactStore(tmp_path / "store")
    first = store.build(context, "v1", {"A": "1"}, ["python3", "app.py"], "abc")
    again = store.build(context, "v1", {"A": "1"}, ["python3", "app.py"], "abc")
    other = store.build(context, "v1", {"A": "2"}, ["python3", "app.py"], "abc")
    assert first.digest == again.digest != other.digest
    assert store.find("v1") == other  # the label's last build
    with tarfile.open(fileobj=io.BytesIO(Path(first.image).read_bytes())) as archive:
        assert sorted(archive.getnames()) == ["RELEASE.json", "app.py", "release.env", "run"]
        run = archive.getmember("run")
        assert run.mode == 0o755 and run.mtime == 0
        assert archive.getmember("release.env").mode == 0o600  # it may hold secrets


def test_the_release_environment_names_the_release_and_quotes_every_value() -> None:
    text = release_env_text("v2", {"APP_GREETING": "hello from v2"})
    assert text == "APP_GREETING='hello from v2'\nCAUTIOUS_RELEASE=v2\n"
    assert run_script(["python3", "-u", "app.py"]).endswith("exec python3 -u app.py\n")


def test_a_context_file_named_like_a_generated_one_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match="rename it"):
        ArtifactStore(tmp_path / "store").build(tmp_path, "v1", {}, ["true"], None)


def test_command_templates_know_their_placeholders() -> None:
    commands = Commands({"restart": "systemctl restart {service}@{port}"})
    assert commands.render("restart", service="sample", port=8001) == (
        "systemctl restart sample@8001"
    )
    with pytest.raises(ConfigError, match=r"unknown placeholder 'host'"):
        Commands({"restart": "ssh {host} restart"})


def test_the_ssh_section_checks_hosts_and_ports() -> None:
    config = Config.model_validate(
        {"ssh": {"hosts": [{"address": "10.0.0.5", "instances": 2, "ports": [9000, 9001]}]}}
    )
    assert config.ssh.restart_command == "systemctl restart {service}@{port}"
    with pytest.raises(ValidationError, match="at least as many ports"):
        Config.model_validate({"ssh": {"hosts": [{"address": "a", "instances": 3, "ports": [1]}]}})
    with pytest.raises(ValidationError, match="extra"):
        Config.model_validate({"ssh": {"hosts": [{"address": "a", "hostname": "b"}]}})


def test_an_unknown_host_key_is_refused_unless_trust_on_first_use_records_it(
    tmp_path: Path,
) -> None:
    key = paramiko.Ed25519Key.from_private_key(
        io.StringIO(generate_key_pair("test").private_openssh)
    )
    name = known_hosts_name("127.0.0.1", 2222)
    strict = PinnedKeys(tmp_path / "known_hosts", say=lambda _: None)
    client = paramiko.SSHClient()
    strict.apply(client)
    with pytest.raises(HostKeyError, match=r"\[127.0.0.1\]:2222 is not in .*trust_on_first_use"):
        client._policy.missing_host_key(client, name, key)

    heard: list[str] = []
    tofu = PinnedKeys(tmp_path / "known_hosts", trust_on_first_use=True, say=heard.append)
    tofu.apply(client)
    client._policy.missing_host_key(client, name, key)
    pinned = paramiko.HostKeys(str(tmp_path / "known_hosts"))
    assert pinned.lookup(name)["ssh-ed25519"] == key
    assert "recorded" in heard[0]


def ssh_config(tmp_path: Path, instances: int, **ssh: object) -> Config:
    hosts = [{"address": "10.0.0.1", "instances": 2}, {"address": "10.0.0.2", "instances": 2}]
    return Config.model_validate(
        {
            "cluster": {"backend": "ssh", "instances": instances},
            "ssh": {"hosts": hosts, **ssh},
            "root": str(tmp_path),
        }
    )


def test_the_ssh_backend_is_chosen_by_name_and_names_its_slots_from_the_hosts(
    tmp_path: Path,
) -> None:
    backend = make_backend(ssh_config(tmp_path, 4), say=lambda _: None)
    assert isinstance(backend, SshBackend)
    assert backend.slots()[:4] == ["sample-1", "sample-2", "sample-3", "sample-4"]
    assert len(backend.slots()) == 8  # 4 running ports and 4 spare ones
    servers = dict(backend.lb_addressing().servers)
    assert servers["sample-2"] == "10.0.0.2:8000" and servers["sample-8"] == "10.0.0.2:8003"


def test_an_ssh_cluster_whose_size_disagrees_with_its_hosts_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.instances is 3 but ssh\.hosts run 4"):
        make_backend(ssh_config(tmp_path, 3), say=lambda _: None)
    with pytest.raises(ConfigError, match=r"list them under ssh\.hosts"):
        make_backend(
            Config.model_validate({"cluster": {"backend": "ssh"}, "root": str(tmp_path)}),
            say=lambda _: None,
        )
