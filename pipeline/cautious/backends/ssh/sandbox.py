"""The ``ssh-sandbox``: SSH host containers that prove the ssh backend, as real machines would.

Each host is a container of the offline base image plus Debian's ``openssh-server`` and
``runit``: sshd, and a runsvdir run by the ``deploy`` user with one runit service per instance
port (``<service>-<port>``, down until a restart brings it up). Cautious generates a client key
and a host key per host, pins the host keys in the sandbox's own known_hosts, and from then on
reaches the hosts only through the ssh backend — SSH on a port published on 127.0.0.1, releases
shipped and switched exactly as on real machines. The load balancer joins the hosts' network
and reaches every instance at ``host-N:port``.

Everything here carries the cluster's labels, so ``sandbox.down`` removes the hosts with the
rest; the keys and known_hosts live in the cluster's state folder and go with them.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from docker.models.containers import Container

from cautious.backends.base import Instance, InstanceSpec, LbAddressing, LbEndpoint
from cautious.backends.ssh.backend import SshBackend
from cautious.backends.ssh.inventory import Host, Inventory
from cautious.backends.ssh.keys import (
    PinnedKeys,
    generate_key_pair,
    known_hosts_line,
    known_hosts_name,
)
from cautious.exceptions import SandboxError
from cautious.release import Release

if TYPE_CHECKING:
    from cautious.config import Config

__all__ = ["HOST_IMAGE", "RUNIT_COMMANDS", "SshSandboxBackend"]

HOST_IMAGE = "cautious/ssh-host:latest"
SSH_USER = "deploy"
_SERVICES = f"/home/{SSH_USER}/service"
_LOGS = f"/home/{SSH_USER}/log"
# runit, as the deploy user runs it on each host: sv talks to the service's supervise folder.
RUNIT_COMMANDS = {
    "restart": f"sv -w 10 restart {_SERVICES}/{{service}}-{{port}}",
    "stop": f"sv -w {{grace}} force-stop {_SERVICES}/{{service}}-{{port}}",
    "status": f"sv status {_SERVICES}/{{service}}-{{port}} | grep -q '^run:'",
    "logs": f"tail -n {{tail}} {_LOGS}/{{service}}-{{port}}/current",
    "kill": f"kill -s {{signal}} $(cat {_SERVICES}/{{service}}-{{port}}/supervise/pid)",
}
_HOST_DOCKERFILE = f"""
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends openssh-server runit procps \\
    && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
RUN useradd --uid 1000 --create-home --shell /bin/sh {SSH_USER} && usermod -p '*' {SSH_USER} \\
    && mkdir -p /run/sshd /srv && chown {SSH_USER}: /srv
COPY sshd.conf /etc/ssh/sshd_config.d/cautious.conf
COPY cautious-host /usr/local/bin/cautious-host
CMD ["/usr/local/bin/cautious-host"]
"""
_SSHD_CONF = """HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
"""
# PID 1 of a host: write one runit service per port, start sshd, hand over to runsvdir.
_ENTRYPOINT = f"""#!/bin/sh
set -e
install -d -o {SSH_USER} -g {SSH_USER} {_SERVICES} {_LOGS} /home/{SSH_USER}/sv "$CAUTIOUS_ROOT"
for port in $CAUTIOUS_PORTS; do
  name="$CAUTIOUS_SERVICE-$port"; dir="/home/{SSH_USER}/sv/$name"
  instance="$CAUTIOUS_ROOT/instances/$port"
  mkdir -p "$dir/log"
  printf '#!/bin/sh\\nexec 2>&1\\ncd %s/current || exit 111\\n' "$instance" > "$dir/run"
  printf 'set -a\\n. %s/instance.env\\nset +a\\nexec ./run\\n' "$instance" >> "$dir/run"
  # a crash stays down, like a container without a restart policy: no watchdog hides it
  printf '#!/bin/sh\\n[ "$1" = 0 ] || exec sv down .\\n' > "$dir/finish"
  printf '#!/bin/sh\\nmkdir -p %s\\nexec svlogd -tt %s\\n' "{_LOGS}/$name" "{_LOGS}/$name" \\
    > "$dir/log/run"
  chmod 755 "$dir/run" "$dir/finish" "$dir/log/run"
  touch "$dir/down"
  ln -sfn "$dir" "{_SERVICES}/$name"
done
chown -R {SSH_USER}: /home/{SSH_USER}
/usr/sbin/sshd -E /var/log/sshd.log
exec chpst -u {SSH_USER}:{SSH_USER} runsvdir -P {_SERVICES}
"""
_SSH_PORT = 22
_READY_TIMEOUT_S = 20.0


class SshSandboxBackend(SshBackend):
    """The ssh backend over host containers this backend creates (and removes) itself."""

    name = "ssh-sandbox"

    def __init__(self, config: Config, *, say: Callable[[str], None] = print) -> None:
        self.folder = config.path(config.state_dir) / config.cluster.name / "ssh-sandbox"
        count = config.ssh.sandbox_hosts
        per_host = -(-config.cluster.instances // count)  # spread evenly, rounding up
        self.planned = tuple(
            Host(
                name=f"host-{index}",
                address="127.0.0.1",
                ssh_port=0,  # published when the container starts
                user=SSH_USER,
                ports=tuple(range(config.service.port, config.service.port + 2 * per_host)),
                instances=per_host,
                lb_address=f"host-{index}",
            )
            for index in range(1, count + 1)
        )
        pinned = PinnedKeys(self.folder / "known_hosts", config.ssh.trust_on_first_use, say)
        inventory = Inventory(config.service.name, self.planned)
        self._setup(config, inventory, pinned, self.folder / "id_ed25519", _commands(config), say)
        self._hosts_known = False

    # -- hosts -------------------------------------------------------------------------------

    def hosts_up(self) -> bool:
        """Whether the host containers run; found once, then the inventory knows their ports."""
        if not self._hosts_known:
            containers = self._host_containers()
            if len(containers) == len(self.planned) and all(
                container.status == "running" for container in containers.values()
            ):
                self._attach(containers)
        return self._hosts_known

    def ensure_hosts(self) -> None:
        """Start the host containers that are missing, with fresh keys pinned for all."""
        if self.hosts_up():
            return
        client = self._lb().client
        image = self._build_host_image()
        network = self._lb().ensure_network()
        self.folder.mkdir(parents=True, exist_ok=True)
        client_key = generate_key_pair(f"cautious@{self.config.cluster.name}")
        client_key.write(self.folder / "id_ed25519")
        host_keys = {}
        for host in self.planned:
            self._remove_container(host)
            host_key = generate_key_pair(host.name)
            container = client.containers.create(
                image,
                name=self._container_name(host),
                hostname=host.name,
                detach=True,
                labels=self._lb().labels(role="ssh-host", host=host.name),
                environment={
                    "CAUTIOUS_SERVICE": self.service,
                    "CAUTIOUS_ROOT": self.layout.root,
                    "CAUTIOUS_PORTS": " ".join(str(port) for port in host.ports),
                },
                network=network.name,
                networking_config={
                    network.name: client.api.create_endpoint_config(aliases=[host.name])
                },
                ports={f"{port}/tcp": ("127.0.0.1", None) for port in (_SSH_PORT, *host.ports)},
                # the service root is a small disk of its own: a full disk is a real condition
                tmpfs={"/srv": f"rw,exec,size={self.config.ssh.sandbox_disk_mib}m"},
            )
            secrets = _secrets_tar(
                host_key.private_openssh, host_key.public_openssh, client_key.public_openssh
            )
            container.put_archive("/", secrets)
            container.start()
            host_keys[host.name] = host_key.public_openssh
        self._attach(self._host_containers())
        self.access.pinned.write(
            [
                known_hosts_line(
                    known_hosts_name(host.address, host.ssh_port), host_keys[host.name]
                )
                for host in self.inventory.hosts
            ]
        )
        self._wait_for_sshd()
        self.say(
            f"ssh-sandbox: {len(self.planned)} hosts up, host keys pinned in "
            f"{self.folder / 'known_hosts'}"
        )

    def _attach(self, containers: dict[str, Container]) -> None:
        """Point the inventory at the ports the host containers publish."""
        hosts = []
        for host in self.planned:
            container = containers[host.name]
            ssh_port = _published_port(container, _SSH_PORT)
            local = {port: ("127.0.0.1", _published_port(container, port)) for port in host.ports}
            hosts.append(
                Host(
                    name=host.name,
                    address="127.0.0.1",
                    ssh_port=ssh_port,
                    user=host.user,
                    ports=host.ports,
                    instances=host.instances,
                    lb_address=host.lb_address,
                    local_ports=local,
                )
            )
        self._replace_inventory(Inventory(self.service, tuple(hosts)))
        self._hosts_known = True

    def _wait_for_sshd(self) -> None:
        """Poll until every host answers SSH (sshd starts a moment after the container)."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            try:
                self.remotes.run_everywhere("true")
                return
            except SandboxError:
                if time.monotonic() >= deadline:
                    raise
                self.remotes.close()
            time.sleep(0.2)

    def _host_containers(self) -> dict[str, Container]:
        found = {}
        for host in self.planned:
            container = self._lb().find(self._container_name(host))
            if container is not None:
                found[host.name] = container
        return found

    def _container_name(self, host: Host) -> str:
        return f"cautious-{self.config.cluster.name}-{host.name}"

    def _remove_container(self, host: Host) -> None:
        container = self._lb().find(self._container_name(host))
        if container is not None:
            container.remove(force=True)

    def _build_host_image(self) -> str:
        from cautious.backends.docker.baseimage import ensure_base_image
        from cautious.backends.docker.images import build_image, managed_labels

        client = self._lb().client
        base = ensure_base_image(client, self.config.service.base_image, self.say)
        return build_image(
            client,
            "the ssh-sandbox host image",
            fileobj=io.BytesIO(_host_context()),
            custom_context=True,
            buildargs={"BASE_IMAGE": base},
            tag=HOST_IMAGE,
            labels=managed_labels(role="ssh-host-image"),
        )

    # -- the backend, on hosts that may not exist yet ------------------------------------------

    def build_release(self, label: str, env: Mapping[str, str], git_sha: str | None) -> Release:
        self.ensure_hosts()
        return super().build_release(label, env, git_sha)

    def start(self, spec: InstanceSpec) -> Instance:
        self.ensure_hosts()
        return super().start(spec)

    def instances(self) -> list[Instance]:
        return super().instances() if self.hosts_up() else []

    def lb_addressing(self) -> LbAddressing:
        """``host-N:port`` through Docker's DNS: a host container recreated keeps its name.

        Several servers share a host name here, and HAProxy's resolver refuses to give one
        address to two servers of a backend unless told that is fine.
        """
        docker_dns = self._lb().lb_addressing()
        return replace(
            docker_dns,
            servers=super().lb_addressing().servers,
            default_server=f"{docker_dns.default_server} resolve-opts allow-dup-ip",
        )

    def ensure_lb(self, config_text: str) -> LbEndpoint:
        self.ensure_hosts()  # the load balancer joins the hosts' network
        return super().ensure_lb(config_text)

    def teardown(self) -> list[str]:
        """Remove the hosts, the load balancer and the network; forget the sandbox's keys."""
        removed = self._lb().teardown()
        self.remotes.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        self._hosts_known = False
        return removed


def _commands(config: Config) -> dict[str, str]:
    """runit's commands, except those the configuration sets itself (``ssh.restart_command`` …)."""
    chosen = config.ssh.model_fields_set
    return {
        what: getattr(config.ssh, f"{what}_command") if f"{what}_command" in chosen else default
        for what, default in RUNIT_COMMANDS.items()
    }


def _host_context() -> bytes:
    """The host image's build context: Dockerfile, sshd settings and the entrypoint."""
    files = {
        "Dockerfile": (_HOST_DOCKERFILE, 0o644),
        "sshd.conf": (_SSHD_CONF, 0o644),
        "cautious-host": (_ENTRYPOINT, 0o755),
    }
    return _tar(files.items(), owner=0)


def _secrets_tar(host_private: str, host_public: str, client_public: str) -> bytes:
    """The host's own key and the sandbox's client key, placed before the host first starts."""
    return _tar(
        [
            ("etc/ssh/ssh_host_ed25519_key", (host_private, 0o600)),
            ("etc/ssh/ssh_host_ed25519_key.pub", (host_public + "\n", 0o644)),
            (f"home/{SSH_USER}/.ssh/authorized_keys", (client_public + "\n", 0o600)),
        ],
        owner=0,
    )


def _tar(files: Iterable[tuple[str, tuple[str, int]]], *, owner: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, (text, mode) in files:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.uid = info.gid = owner
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _published_port(container: Container, port: int) -> int:
    container.reload()
    bindings = container.attrs.get("NetworkSettings", {}).get("Ports", {}) or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise SandboxError(f"ssh-sandbox host {container.name} publishes no port for {port}")
