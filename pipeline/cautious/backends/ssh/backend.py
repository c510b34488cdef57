"""The ``ssh`` backend: instances are services on real hosts, reached over SSH with Fabric.

A release is a directory on each host (see ``layout``). Building a release packs the service
into a tarball and *ships* it to every host before any instance moves: each host is checked
first (reachable, known key, root writable, room for the upload), so bad input is reported
before anything was written anywhere. Starting an instance switches its ``current`` link and
runs the configured restart command; stopping runs the stop command. The service's supervisor
(systemd, runit, supervisord …) is named by those commands, never assumed.

Rolling back needs no upload: the previous release's directory is still on the host, so its
link is switched back and the instance restarted. ``uploads`` counts uploads, to prove it.

The load balancer is HAProxy in a container on this machine's Docker engine, pointed at
``address:port`` of every instance; its runtime API is published on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cautious.backends.base import (
    Instance,
    InstanceSpec,
    InstanceState,
    LbAddressing,
    LbEndpoint,
    LbRestart,
    Pace,
    StateStore,
)
from cautious.backends.ssh.artifact import ArtifactStore
from cautious.backends.ssh.inventory import Host, Inventory, Placement
from cautious.backends.ssh.keys import PinnedKeys
from cautious.backends.ssh.layout import (
    EXIT_DISK_FULL,
    EXIT_NOT_WRITABLE,
    EXIT_RELEASE_MISSING,
    InstanceLine,
    Layout,
    parse_instance_lines,
    release_dir_name,
)
from cautious.backends.ssh.remote import Access, Output, Remotes
from cautious.cluster.health import probe
from cautious.config import SshConfig
from cautious.exceptions import (
    CautiousError,
    ConfigError,
    GateFailed,
    HostUnreachable,
    PrerequisiteError,
    SandboxError,
    UsageError,
)
from cautious.release import Release

if TYPE_CHECKING:
    from cautious.backends.docker import DockerBackend
    from cautious.cluster.balancer import LoadBalancer
    from cautious.config import Config

__all__ = ["Commands", "SshBackend"]

_PLACEHOLDERS = ("service", "port", "instance", "root", "grace", "tail", "signal")


class Commands:
    """The supervisor's commands, as templates over ``{service}``, ``{port}``, ``{root}`` …"""

    def __init__(self, templates: Mapping[str, str]) -> None:
        for what, template in templates.items():
            try:
                template.format(**{name: "x" for name in _PLACEHOLDERS})
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(
                    f"ssh.{what}_command {template!r}: unknown placeholder {exc}; "
                    f"known: {', '.join('{' + name + '}' for name in _PLACEHOLDERS)}"
                ) from None
        self.templates = dict(templates)

    def render(self, what: str, **values: object) -> str:
        return self.templates[what].format_map({name: "" for name in _PLACEHOLDERS} | values)


class SshBackend:
    """Instances of one service on the hosts of an inventory, behind HAProxy on this machine."""

    name = "ssh"
    pace = Pace(ready_poll_s=0.2, bake_poll_s=0.5)  # each look at an instance is a round trip
    inventory: Inventory
    remotes: Remotes

    def __init__(self, config: Config, *, say: Callable[[str], None] = print) -> None:
        ssh: SshConfig = config.ssh
        if not ssh.hosts:
            raise ConfigError("cluster.backend ssh needs hosts: list them under ssh.hosts")
        inventory = Inventory.from_config(ssh, config.service.name, config.service.port)
        if inventory.running_count != config.cluster.instances:
            raise ConfigError(
                f"cluster.instances is {config.cluster.instances} but ssh.hosts run "
                f"{inventory.running_count} instances; make them agree"
            )
        identity = config.path(Path(ssh.identity_file).expanduser()) if ssh.identity_file else None
        pinned = PinnedKeys(
            config.path(Path(ssh.known_hosts).expanduser()), ssh.trust_on_first_use, say
        )
        self._setup(config, inventory, pinned, identity, _templates(ssh), say)

    def _replace_inventory(self, inventory: Inventory) -> None:
        """New addresses for the same hosts (the ssh-sandbox learns its ports late)."""
        self.remotes.close()
        self.inventory = inventory
        self.remotes = Remotes(inventory.hosts, self.access)

    def _setup(
        self,
        config: Config,
        inventory: Inventory,
        pinned: PinnedKeys,
        identity: Path | None,
        commands: Mapping[str, str],
        say: Callable[[str], None],
    ) -> None:
        """Everything but where hosts, keys and commands come from (the ssh-sandbox differs)."""
        self.config = config
        self.say = say
        self.service = config.service.name
        self.commands = Commands(commands)
        self.layout = Layout(config.ssh.root.format(service=self.service))
        self.access = Access(
            pinned=pinned,
            identity_file=identity,
            connect_timeout_s=config.ssh.connect_timeout_s,
            command_timeout_s=config.ssh.command_timeout_s,
        )
        self.inventory = inventory
        self.remotes = Remotes(inventory.hosts, self.access)
        self.artifacts = ArtifactStore(config.path(config.state_dir) / "releases" / self.service)
        self.uploads = 0  # per host and release: a rollback must not add to it
        self._uploads_lock = threading.Lock()
        self._lb_backend: DockerBackend | None = None

    # -- releases ------------------------------------------------------------------------------

    def find_release(self, label: str) -> Release | None:
        """The last build of ``label``, shipped to any host that lacks it (checked first)."""
        release = self.artifacts.find(label)
        if release is not None:
            self.ship(release)
        return release

    def build_release(self, label: str, env: Mapping[str, str], git_sha: str | None) -> Release:
        """Pack the release, then ship it to every host (checked first, all of them)."""
        release = self.artifacts.build(
            self.config.path(self.config.service.context),
            label,
            env,
            self.config.ssh.command,
            git_sha,
        )
        self.ship(release)
        return release

    def release_by_digest(self, label: str, digest: str) -> Release:
        return self.artifacts.by_digest(label, digest)

    def ship(self, release: Release, hosts: list[Host] | None = None) -> list[Host]:
        """Put ``release`` on the hosts lacking it; return those it was uploaded to.

        Every host is checked before the first byte goes anywhere: an unreachable host, an
        unknown key, a root that is not writable or a disk without room is bad input (exit 2)
        and leaves every host as it was.
        """
        targets = hosts or list(self.inventory.hosts)
        name = release_dir_name(release.label, release.digest)
        tarball = self.artifacts.require_tarball(release)
        need_kib = (tarball.stat().st_size + self.artifacts.unpacked_bytes(release.digest)) // 1024
        checks = self._before_anything(
            lambda host: self.layout.check_before_upload(name, need_kib + 1), targets
        )
        missing = [host for host in targets if not Layout.is_present(checks[host].stdout)]
        for host in targets:
            output = checks[host]
            if output.exit_code in {EXIT_NOT_WRITABLE, EXIT_DISK_FULL}:
                raise PrerequisiteError(f"host {host.name}: {output.last_line()}; nothing shipped")
            if not output.ok:
                raise SandboxError(
                    f"host {host.name}: checking before the upload failed: {output.last_line()}"
                )
        if not missing:
            return []
        self.say(f"release {release.label}: uploading to {', '.join(h.name for h in missing)}")
        self.remotes.put_everywhere(tarball, self.layout.upload_path(name), missing)
        with self._uploads_lock:
            self.uploads += len(missing)
        unpacked = self.remotes.run_everywhere(
            lambda host: self.layout.unpack(name, release.digest), missing
        )
        for host, output in unpacked.items():
            if not output.ok:
                raise SandboxError(f"host {host.name}: release {name}: {output.last_line()}")
        self.remotes.run_everywhere(self.layout.prune(self.config.ssh.keep_releases), missing)
        return missing

    def _before_anything(
        self, script: Callable[[Host], str], hosts: list[Host]
    ) -> dict[Host, Output]:
        """Run checks; a host that cannot be reached is a prerequisite error at this point."""
        try:
            return self.remotes.run_everywhere(script, hosts)
        except HostUnreachable as exc:
            raise PrerequisiteError(f"{exc}; nothing shipped") from None

    # -- instances -----------------------------------------------------------------------------

    def slots(self) -> list[str]:
        return self.inventory.slot_names()

    def start(self, spec: InstanceSpec) -> Instance:
        """Switch the slot's ``current`` to the release (shipping it if a host lacks it), then
        run the restart command; a non-zero exit is a failed gate."""
        place = self._place(spec.slot)
        remote = self.remotes[place.host]
        name = release_dir_name(spec.release.label, spec.release.digest)
        env = {
            **spec.env,
            "CAUTIOUS_INSTANCE": spec.slot,
            "CAUTIOUS_PORT": str(place.port),
            self.config.ssh.port_env: str(place.port),
        }
        switched = remote.run(self.layout.switch(place.port, name, env))
        if switched.exit_code == EXIT_RELEASE_MISSING:
            self._ship_mid_rollout(spec.release, place.host)
            switched = remote.run(self.layout.switch(place.port, name, env))
        if not switched.ok:
            raise SandboxError(f"{spec.slot} on {place.host.name}: {switched.last_line()}")
        try:
            self._supervise(place, "restart", failure=GateFailed)
        except GateFailed:
            with contextlib.suppress(CautiousError):
                self.stop(spec.slot, grace_s=0)
            raise
        return self.instance(spec.slot)

    def _ship_mid_rollout(self, release: Release, host: Host) -> None:
        """A host lost the release (pruned, reinstalled): ship it now; failing is a failed step."""
        try:
            self.ship(release, [host])
        except UsageError as exc:
            raise SandboxError(str(exc)) from None

    def stop(self, name: str, grace_s: float, *, remove: bool = True) -> None:
        place = self._place(name)
        grace = max(1, round(grace_s))
        timeout_s = grace + self.config.ssh.command_timeout_s
        self._supervise(place, "stop", timeout_s=timeout_s, grace=grace)
        if remove:
            self.remotes[place.host].run(self.layout.forget(place.port))

    def instance(self, name: str) -> Instance:
        """One instance; ``unreachable`` when its host does not answer (a gate fails on it)."""
        place = self._place(name)
        status = {place.port: self.commands.render("status", **self._values(place))}
        try:
            output = self.remotes[place.host].run(self.layout.report_instances(status))
        except HostUnreachable:
            return self._unreachable(place)
        lines = {line.port: line for line in parse_instance_lines(output.stdout)}
        return self._describe(place, lines.get(place.port))

    def instances(self) -> list[Instance]:
        """Every instance on every host, read with one command per host, all hosts at once.

        Every slot of a host that does not answer is listed ``unreachable`` (what runs there
        is unknown), so a rollback and its journal go on with the hosts that do answer.
        """

        def report(host: Host) -> str:
            statuses = {
                place.port: self.commands.render("status", **self._values(place))
                for place in self.inventory.on_host(host)
            }
            return self.layout.report_instances(statuses)

        outputs = self.remotes.run_each(report)
        found = []
        for place in self.inventory.placements:
            output = outputs[place.host]
            if isinstance(output, HostUnreachable):  # any of its ports may be serving
                found.append(self._unreachable(place))
                continue
            lines = {line.port: line for line in parse_instance_lines(output.stdout)}
            if place.port in lines:
                found.append(self._describe(place, lines[place.port]))
        return found

    def probe(self, name: str, path: str, *, timeout_s: float) -> int:
        place = self._place(name)
        address, port = place.host.local_address(place.port)
        return probe(f"http://{address}:{port}{path}", timeout_s=timeout_s)

    def logs(self, name: str, tail: int = 50) -> str:
        place = self._place(name)
        output = self.remotes[place.host].run(
            self.commands.render("logs", tail=tail, **self._values(place))
        )
        return output.stdout + output.stderr

    # -- faults --------------------------------------------------------------------------------

    def kill(self, name: str, signal: str) -> InstanceState:
        self._supervise(self._place(name), "kill", signal=signal.removeprefix("SIG"))
        return self.instance(name).state

    def restart(self, name: str, grace_s: float) -> None:
        self._supervise(self._place(name), "restart", grace=max(1, round(grace_s)))

    def pause(self, name: str) -> None:
        self.kill(name, "STOP")

    def unpause(self, name: str) -> None:
        self.kill(name, "CONT")

    # -- the load balancer: HAProxy on this machine's engine -----------------------------------

    def lb_addressing(self) -> LbAddressing:
        servers = tuple(
            (place.slot, f"{place.host.lb_address}:{place.port}")
            for place in self.inventory.placements
        )
        return LbAddressing(servers=servers, default_server="init-addr last,libc,none")

    def _lb(self) -> DockerBackend:
        if self._lb_backend is None:
            from cautious.backends.docker import DockerBackend

            self._lb_backend = DockerBackend(self.config, say=self.say)
        return self._lb_backend

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        return self._lb().ensure_lb(config_text)

    def state_store(self) -> StateStore:
        """The lock and journal sit with the load balancer: a labelled volume in its engine."""
        return self._lb().state_store()

    def lb(self) -> LbEndpoint | None:
        return self._lb().lb()

    def lb_runtime(self) -> LoadBalancer | None:
        return self._lb().lb_runtime()

    def restart_lb(self, grace_s: float) -> LbRestart:
        return self._lb().restart_lb(grace_s)

    def teardown(self) -> list[str]:
        """Remove the load balancer this machine runs; the hosts keep their releases."""
        removed = self._lb().teardown()
        self.remotes.close()
        return removed

    # -- helpers -------------------------------------------------------------------------------

    def _place(self, slot: str) -> Placement:
        try:
            return self.inventory.placement(slot)
        except KeyError:
            raise SandboxError(
                f"no host port for instance {slot}: the inventory has "
                f"{len(self.inventory.placements)} slots"
            ) from None

    def _supervise(
        self,
        place: Placement,
        what: str,
        *,
        failure: type[SandboxError] = SandboxError,
        timeout_s: float | None = None,
        **values: object,
    ) -> None:
        """Run one of the supervisor's commands for an instance; ``failure`` when it exits
        non-zero, naming the instance, the host, the command and its last line."""
        command = self.commands.render(what, **self._values(place), **values)
        output = self.remotes[place.host].run(command, timeout_s=timeout_s)
        if not output.ok:
            raise failure(
                f"{place.slot} on {place.host.name}: `{command}` exited {output.exit_code}: "
                f"{output.last_line()}"
            )

    def _values(self, place: Placement) -> dict[str, object]:
        return {
            "service": self.service,
            "port": place.port,
            "instance": place.slot,
            "root": self.layout.root,
        }

    def _unreachable(self, place: Placement) -> Instance:
        lb_address = (place.host.lb_address, place.port)
        return Instance(place.slot, "", "", "unreachable", lb_address, None, host=place.host.name)

    def _describe(self, place: Placement, line: InstanceLine | None) -> Instance:
        address, port = place.host.local_address(place.port)
        lb_address = (place.host.lb_address, place.port)
        if line is None:
            return Instance(place.slot, "", "", "missing", lb_address, None, host=place.host.name)
        state: InstanceState = "running" if line.status_code == 0 else "exited"
        return Instance(
            name=place.slot,
            release=line.label,
            digest=line.digest,
            state=state,
            lb_address=lb_address,
            local_url=f"http://{address}:{port}",
            host=place.host.name,
            release_dir=line.target,
        )


def _templates(ssh: SshConfig) -> dict[str, str]:
    return {
        "restart": ssh.restart_command,
        "stop": ssh.stop_command,
        "status": ssh.status_command,
        "logs": ssh.logs_command,
        "kill": ssh.kill_command,
    }
