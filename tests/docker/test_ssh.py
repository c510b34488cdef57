"""The ssh backend on an ssh-sandbox of 3 hosts × 2 instances: real sshd, runit and HAProxy.

One cluster serves the whole module (bringing three hosts up costs about half a minute); the
tests run in file order and each leaves the hosts on one release. Rollouts run under steady
load; the files on the hosts (every ``current`` link) are read through Docker, not through
the backend under test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import yaml
from cautious.audit import audit
from cautious.backends.ssh.keys import generate_key_pair
from cautious.backends.ssh.layout import release_dir_name
from cautious.backends.ssh.sandbox import SshSandboxBackend
from cautious.cluster.sandbox import Sandbox
from cautious.config import Config, load_config
from cautious.deploy import DeployPipeline, Prepared
from cautious.exceptions import Drifted, UsageError
from cautious.measure.session import Measured, measuring_hook
from cautious.rollout.runner import RolloutResult

from tests.docker.helpers import LoadLoop, assert_nothing_left, cluster_config

pytestmark = pytest.mark.docker

HOSTS = ("host-1", "host-2", "host-3")
ROOT = "/srv/sample"
# A restart command of the user's own (it replaces the sandbox's runit default): it refuses the
# release labelled restart-fails, as a unit that fails to start would.
RESTART = (
    '! grep -q \'"label": "restart-fails"\' {root}/instances/{port}/current/RELEASE.json '
    "&& sv -w 10 restart /home/deploy/service/{service}-{port}"
)
RELEASES = {
    "restart-fails": {"env": {"APP_GREETING": "never starts"}},
    "never-shipped": {"env": {"APP_GREETING": "refused before any upload"}},
}
ROLLOUT = {
    "bake_s": 1,
    "ready_timeout_s": 15,
    "drain_timeout_s": 5,
    "stop_grace_s": 5,
    "canary_steps": [50, 100],
    "canary_min_requests": 5,
}
# The canary judge rules out a 10-point error regression: enough for a test that proves the
# backend, and few enough requests for the request loop on a loaded two-core machine.
CANARY = {"detect": {"error_ratio": 0.1, "p99": None}, "bake_s": 5, "max_extension_s": 120}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cluster_config(
        tmp_path_factory.mktemp("ssh"),
        cluster={"backend": "ssh-sandbox", "instances": 6},
        ssh={"sandbox_hosts": 3, "restart_command": RESTART, "connect_timeout_s": 20},
        service={"test_command": "true"},
        rollout=ROLLOUT,
        canary=CANARY,
        releases=RELEASES,
        load={"rate": 50, "warmup_s": 2, "tail_s": 2},
    )


@pytest.fixture(scope="module")
def cluster(config_path: Path, docker_client: docker.DockerClient) -> Iterator[Sandbox]:
    config = load_config(config_path)
    sandbox = Sandbox(config, say=lambda _: None)
    try:
        sandbox.up(6, "v1")
        yield sandbox
    finally:
        sandbox.down()
        assert_nothing_left(docker_client, config.cluster.name)


def pipeline(cluster: Sandbox, **rollout: object) -> DeployPipeline:
    config = cluster.config.model_copy(
        update={"rollout": cluster.config.rollout.model_copy(update=rollout)}
    )
    return DeployPipeline(config, say=lambda _: None, sandbox=Sandbox(config, cluster.backend))


def backend(cluster: Sandbox) -> SshSandboxBackend:
    assert isinstance(cluster.backend, SshSandboxBackend)
    return cluster.backend


def on_host(
    client: docker.DockerClient, config: Config, host: str, script: str, user: str = "deploy"
) -> str:
    container = client.containers.get(f"cautious-{config.cluster.name}-{host}")
    code, output = container.exec_run(["sh", "-c", script], user=user)
    assert code == 0, output.decode()
    return str(output.decode())


def links(client: docker.DockerClient, config: Config) -> dict[str, str]:
    """Every ``current`` link on every host and where it points, read through Docker."""
    found = {}
    for host in HOSTS:
        script = f"for l in {ROOT}/current {ROOT}/instances/*/current; do "
        script += '[ -L "$l" ] && echo "$l $(readlink "$l")"; done; true'
        for line in on_host(client, config, host, script).splitlines():
            path, target = line.split()
            found[f"{host}:{path}"] = target
    return found


def files(client: docker.DockerClient, config: Config) -> dict[str, str]:
    """What each host holds under the root (links with their targets), to compare later."""
    script = f"find {ROOT} -not -path '*/.incoming*' -printf '%p %l\\n' | sort"
    return {host: on_host(client, config, host, script) for host in HOSTS}


def release_dir(cluster: Sandbox, label: str) -> str:
    release = cluster.backend.find_release(label)
    assert release is not None
    return f"{ROOT}/releases/{release_dir_name(label, release.digest)}"


def assert_everywhere_on(cluster: Sandbox, client: docker.DockerClient, label: str) -> None:
    assert {item.release for item in cluster.backend.instances()} == {label}
    assert len(cluster.backend.instances()) == 6
    current = links(client, cluster.config)
    assert len(current) == 9  # each host's own link and its two instances'
    assert set(current.values()) == {release_dir(cluster, label)}


@pytest.mark.parametrize(
    ("strategy", "release"),
    [("rolling", "v2"), ("blue-green", "v1"), ("stop-and-go", "v2"), ("canary", "v1")],
)
def test_a_deploy_under_locust_load_loses_no_request_and_moves_every_link(
    cluster: Sandbox,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    strategy: str,
    release: str,
) -> None:
    """Measured as `invoke deploy` measures: Locust through HAProxy, the report's figures.
    Stop-and-go takes every instance out at once: its outage is measured, not hidden."""
    deploy = pipeline(cluster, strategy=strategy)
    measured: list[Measured] = []
    result = deploy.deploy(release, rollout=measuring_hook(deploy, tmp_path, "deploy", measured))
    assert result is not None and result.outcome == "succeeded", result and result.reason
    [measurement] = measured
    figures = measurement.report["availability"]
    assert figures["sent"] > 100
    if strategy == "stop-and-go":
        assert figures["failed"] + figures["missing"] > 0
        assert figures["longest_error_window_s"] >= 1
    else:
        assert figures["failed"] == 0, figures
    assert_everywhere_on(cluster, docker_client, release)
    ended = deploy.journal.rollouts()[-1].end
    assert ended is not None
    assert {(item["host"], item["release_dir"]) for item in ended["instances"]} == {
        (host, release_dir(cluster, release)) for host in HOSTS
    }


def counting_uploads(deploy: DeployPipeline, seen: list[int]) -> Callable[..., RolloutResult]:
    """A rollout hook noting the upload count when the rollout starts and when it ends."""

    def hook(prepared: Prepared, kind: str) -> RolloutResult:
        seen.append(backend(deploy.sandbox).uploads)
        result = deploy.run_rollout(prepared, kind)
        seen.append(backend(deploy.sandbox).uploads)
        return result

    return hook


def test_a_release_that_crashes_on_start_is_rolled_back_by_links_alone_with_no_upload(
    cluster: Sandbox, docker_client: docker.DockerClient
) -> None:
    deploy = pipeline(cluster, strategy="rolling")
    seen: list[int] = []
    with LoadLoop(str(cluster.status().lb_url)) as load:
        result = deploy.deploy("crash-on-start", rollout=counting_uploads(deploy, seen))
    assert result is not None and result.outcome == "rolled-back"
    assert "exited before" in result.reason  # the crash is seen at once, not after a timeout
    before, after = seen
    assert after == before  # shipped once before the rollout; the rollback uploaded nothing
    assert load.failures == []
    assert_everywhere_on(cluster, docker_client, "v1")


def test_a_restart_command_that_fails_is_a_failed_gate_and_rolls_back(
    cluster: Sandbox, docker_client: docker.DockerClient
) -> None:
    result = pipeline(cluster, strategy="rolling").deploy("restart-fails")
    assert result is not None and result.outcome == "rolled-back"
    assert "sv -w 10 restart" in result.reason and "exited 1" in result.reason
    assert_everywhere_on(cluster, docker_client, "v1")


_CLI = "from cautious.cli.program import program; program.run()"


def cli_build(config_path: Path, release: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", _CLI, "build", "--release", release]
    return subprocess.run(
        [*command, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def known_hosts(cluster: Sandbox) -> Path:
    return backend(cluster).folder / "known_hosts"


def forget_host_2(cluster: Sandbox) -> str:
    lines = known_hosts(cluster).read_text().splitlines(keepends=True)
    port = backend(cluster).inventory.hosts[1].ssh_port
    known_hosts(cluster).write_text("".join(line for line in lines if f"]:{port} " not in line))
    return f"[127.0.0.1]:{port}"


def swap_host_2_key(cluster: Sandbox) -> str:
    port = backend(cluster).inventory.hosts[1].ssh_port
    lines = known_hosts(cluster).read_text().splitlines(keepends=True)
    other = generate_key_pair("impostor").public_openssh.split()[1]
    swapped = [
        f"[127.0.0.1]:{port} ssh-ed25519 {other}\n" if f"]:{port} " in line else line
        for line in lines
    ]
    known_hosts(cluster).write_text("".join(swapped))
    return "pins"


BadInput = Callable[[Sandbox, docker.DockerClient], tuple[str, Callable[[], None]]]


def unknown_key(cluster: Sandbox, client: docker.DockerClient) -> tuple[str, Callable[[], None]]:
    saved = known_hosts(cluster).read_text()
    name = forget_host_2(cluster)
    return f"host {name} is not in", lambda: known_hosts(cluster).write_text(saved)


def wrong_key(cluster: Sandbox, client: docker.DockerClient) -> tuple[str, Callable[[], None]]:
    saved = known_hosts(cluster).read_text()
    return swap_host_2_key(cluster), lambda: known_hosts(cluster).write_text(saved)


def host_down(cluster: Sandbox, client: docker.DockerClient) -> tuple[str, Callable[[], None]]:
    container = client.containers.get(f"cautious-{cluster.config.cluster.name}-host-3")
    container.exec_run(["pkill", "-x", "sshd"])

    def undo() -> None:
        container.exec_run(["/usr/sbin/sshd", "-E", "/var/log/sshd.log"])

    return "does not answer SSH", undo


def root_read_only(cluster: Sandbox, client: docker.DockerClient) -> tuple[str, Callable[[], None]]:
    on_host(client, cluster.config, "host-1", f"chmod 555 {ROOT}/releases")

    def undo() -> None:
        on_host(client, cluster.config, "host-1", f"chmod 755 {ROOT}/releases")

    return "is not writable by deploy", undo


def disk_full(cluster: Sandbox, client: docker.DockerClient) -> tuple[str, Callable[[], None]]:
    # /srv on a sandbox host is a small tmpfs of its own: fill it up
    fill = "dd if=/dev/zero of=/srv/filler bs=64k 2>/dev/null; test -s /srv/filler"
    on_host(client, cluster.config, "host-2", fill, user="root")

    def undo() -> None:
        on_host(client, cluster.config, "host-2", "rm -f /srv/filler", user="root")

    return "KiB free, the release needs", undo


@pytest.mark.parametrize(
    "bad_input", [unknown_key, wrong_key, host_down, root_read_only, disk_full]
)
def test_bad_input_is_refused_in_one_line_and_leaves_every_host_as_it_was(
    cluster: Sandbox, docker_client: docker.DockerClient, config_path: Path, bad_input: BadInput
) -> None:
    before = files(docker_client, cluster.config)
    expected, undo = bad_input(cluster, docker_client)
    try:
        with pytest.raises(UsageError) as refused:
            Sandbox(load_config(config_path), say=lambda _: None).release(
                "never-shipped", rebuild=True
            )
    finally:
        undo()
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert expected in message and "\n" not in message, message
    assert files(docker_client, cluster.config) == before


def test_the_command_line_exits_2_with_that_one_line(
    cluster: Sandbox, docker_client: docker.DockerClient, config_path: Path
) -> None:
    expected, undo = unknown_key(cluster, docker_client)
    try:
        result = cli_build(config_path, "never-shipped")
    finally:
        undo()
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_trust_on_first_use_records_an_unknown_host_key_and_then_checks_it(
    cluster: Sandbox, config_path: Path, tmp_path: Path
) -> None:
    saved = known_hosts(cluster).read_text()
    name = forget_host_2(cluster)
    raw = yaml.safe_load(config_path.read_text())
    raw["ssh"]["trust_on_first_use"] = True
    trusting = tmp_path / "cautious.yaml"
    trusting.write_text(yaml.safe_dump(raw))
    result = cli_build(trusting, "v1")
    assert result.returncode == 0, result.stderr
    recorded = [line for line in known_hosts(cluster).read_text().splitlines() if name in line]
    assert len(recorded) == 1
    assert recorded[0].split()[2] in saved  # the key recorded is the one the sandbox pinned


def on_host_2(cluster: Sandbox, slot: str) -> bool:
    return backend(cluster).inventory.placement(slot).host.name == "host-2"


def test_a_host_whose_sshd_dies_mid_rollout_is_named_and_every_other_host_goes_back(
    cluster: Sandbox, docker_client: docker.DockerClient
) -> None:
    config = cluster.config
    [running] = {item.release for item in cluster.backend.instances()}
    target = "v1" if running == "v2" else "v2"
    deploy = pipeline(cluster, strategy="rolling")
    from_dir = release_dir(cluster, running)  # read while every host answers

    def hook(prepared: Prepared, kind: str) -> RolloutResult:
        # Slots are dealt to hosts round-robin: the second moves on host-2, and host-2 loses
        # sshd when the third starts to move, before its second slot (the fifth) can.
        order = prepared.plan.current
        assert [backend(cluster).inventory.placement(slot).host.name for slot in order[:3]] == [
            "host-1",
            "host-2",
            "host-3",
        ]

        def kill_sshd_on_host_2(line: str) -> None:
            if re.search(rf"\b{order[2]}\b", line) and not line.startswith("rollback"):
                on_host(docker_client, config, "host-2", "pkill -x sshd; true", user="root")

        return deploy.run_rollout(prepared, kind, on_step=kill_sshd_on_host_2)

    try:
        result = deploy.deploy(target, rollout=hook)
        assert result is not None and result.outcome == "aborted", result and result.reason
        assert "not on host-2 (unreachable" in result.reason
        current = links(docker_client, config)
        answering = {path: dir_ for path, dir_ in current.items() if not path.startswith("host-2")}
        assert set(answering.values()) == {from_dir}
        ended = deploy.journal.rollouts()[-1].end
        assert ended is not None
        silent = {item["name"] for item in ended["instances"] if item["state"] == "unreachable"}
        assert silent == {slot for slot in cluster.backend.slots() if on_host_2(cluster, slot)}
        with pytest.raises(Drifted, match="unreachable: host-2"):
            deploy.deploy(running)
    finally:
        restart = "pgrep -x sshd >/dev/null || /usr/sbin/sshd -E /var/log/sshd.log"
        on_host(docker_client, config, "host-2", restart, user="root")

    # host-2 answers again, one slot on the target: a forced deploy converges first
    with pytest.raises(Drifted, match="unjournaled: "):
        deploy.deploy(running)
    assert deploy.deploy(running, force=True) is None  # every instance already runs it
    assert_everywhere_on(cluster, docker_client, running)
    assert audit(deploy.journal, cluster.backend).clean
