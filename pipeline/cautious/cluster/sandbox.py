"""The sandbox: a miniature production of N instances behind HAProxy, on one backend.

``up`` is idempotent — it builds what is missing, starts the load balancer, fills empty slots
with the requested release (each brought in carefully, see ``operations``) and stops extras;
it never changes the release of a running instance (that is a rollout's job). ``status``
joins what the backend and the load balancer each say; ``down`` removes exactly what was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cautious.backends import Backend, Instance, InstanceSpec, LbEndpoint, make_backend
from cautious.backends.dependencies import DependencySpec, StatefulBackend
from cautious.cluster.balancer import LoadBalancer
from cautious.cluster.lb import render_haproxy_config
from cautious.config import Config, DependencyConfig, env_values
from cautious.exceptions import ConfigError, SandboxError, UsageError
from cautious.release import Release, git_revision
from cautious.rollout.journal import Journal
from cautious.rollout.operations import retire_instance, start_instance

__all__ = ["InstanceStatus", "Sandbox", "SandboxStatus"]


@dataclass(frozen=True)
class InstanceStatus:
    """One instance as the backend and the load balancer see it."""

    name: str
    release: str
    digest: str
    state: str
    health: str  # ready | not-ready | unknown
    lb_state: str  # the LB's status for the slot (UP, DRAIN, MAINT, DOWN …)
    lb_weight: int
    address: str
    local_url: str
    host: str = ""  # ssh: the machine, and the release directory its ``current`` link names
    release_dir: str = ""


@dataclass(frozen=True)
class SandboxStatus:
    """The cluster now: its front door and its instances."""

    cluster: str
    backend: str
    lb_url: str | None
    runtime_api: str | None
    instances: list[InstanceStatus]

    @property
    def releases(self) -> set[str]:
        return {instance.release for instance in self.instances}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox:
    """One cluster of the configured service."""

    def __init__(
        self,
        config: Config,
        backend: Backend | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.say = say
        self.backend = backend or make_backend(config, say)
        self.journal = Journal.of(config, self.backend)  # kept with the cluster

    # -- release and load balancer --------------------------------------------------------------

    def release(self, label: str, *, rebuild: bool = False) -> Release:
        """The named release's image, built when missing (or when ``rebuild`` asks for it)."""
        env = self.config.release_env(label)  # unknown names: a ConfigError before any work
        existing = None if rebuild else self.backend.find_release(label)
        return existing or self.backend.build_release(label, env, git_revision(self.config.root))

    def release_by_digest(self, label: str, digest: str) -> Release:
        """Exactly the build a journal names, even if the label was rebuilt since."""
        return self.backend.release_by_digest(label, digest)

    def working_tree_release(self) -> Release:
        """The working tree built as a release labelled with its git revision."""
        sha = git_revision(self.config.root)
        label = f"git-{sha or 'unversioned'}"
        return self.backend.build_release(label, env_values(self.config.service.env), sha)

    def ensure_lb(self) -> LbEndpoint:
        """Run the load balancer with this cluster's configuration (kept when unchanged)."""
        config_text = render_haproxy_config(self.config, self.backend.lb_addressing())
        return self.backend.ensure_lb(config_text)

    def stateful_backend(self) -> StatefulBackend:
        """The backend, as one that runs dependencies and one-off commands (or bad input)."""
        if not isinstance(self.backend, StatefulBackend):
            raise ConfigError(
                f"backend {self.backend.name!r} cannot run dependencies or hooks; "
                "use the docker backend for a stateful service"
            )
        return self.backend

    def ensure_dependencies(self) -> None:
        """Start the declared dependencies (once per cluster) before an instance needs them."""
        for item in self.config.dependencies:
            self.stateful_backend().ensure_dependency(self.dependency_spec(item))

    def dependency_spec(self, item: DependencyConfig) -> DependencySpec:
        return DependencySpec(
            name=item.name,
            port=item.port,
            context=None if item.context is None else self.config.path(item.context),
            dockerfile=item.dockerfile,
            image=item.image,
            env=dict(item.env),
            ready_command=tuple(item.ready_command),
            ready_timeout_s=item.ready_timeout_s,
        )

    def runtime(self) -> LoadBalancer:
        """The client that steers the running load balancer."""
        runtime = self.backend.lb_runtime()
        if runtime is None:
            raise SandboxError(
                f"cluster {self.config.cluster.name!r} has no load balancer running; "
                "run `invoke sandbox.up` first"
            )
        return runtime

    # -- up / status / down ------------------------------------------------------------------

    def up(self, instances: int | None = None, release: str | None = None) -> SandboxStatus:
        """Make the cluster run ``instances`` copies; start missing ones on ``release``."""
        count = instances or self.config.cluster.instances
        running = [item for item in self.backend.instances() if item.state == "running"]
        label = self._release_for_up(release, running)
        target = self.release(label)
        self.ensure_dependencies()
        self.ensure_lb()
        runtime = self.runtime()
        dead = [item for item in self.backend.instances() if item.state != "running"]
        for item in dead:
            self.backend.stop(item.name, grace_s=0)
        for extra in running[count:]:
            self.say(f"{extra.name}: stopping (cluster scaled to {count})")
            retire_instance(
                self.backend,
                runtime,
                extra.name,
                drain_timeout_s=self.config.rollout.drain_timeout_s,
                grace_s=self.config.rollout.stop_grace_s,
            )
        taken = {item.name for item in running[:count]}
        free = [slot for slot in self.backend.slots() if slot not in taken]
        for slot in free[: count - len(taken)]:
            started = start_instance(
                self.backend,
                runtime,
                self.spec(slot, target),
                health_path=self.config.service.health_path,
                ready_timeout_s=self.config.rollout.ready_timeout_s,
            )
            self.say(f"{slot}: {label} ready in {started.ready_s:.1f} s")
        if dead or len(running) != count:
            self._journal_up()
        return self.status()

    def _journal_up(self) -> None:
        """Record what runs after ``up`` changed it: the audit holds every instance to the
        journal, and these were started outside a rollout."""
        self.journal.note(
            "up",
            instances=[
                {"name": item.name, "release": item.release, "digest": item.digest}
                for item in self.backend.instances()
                if item.state == "running"
            ],
        )

    def spec(self, slot: str, release: Release) -> InstanceSpec:
        """How to start ``release`` in ``slot`` (the environment is baked into the image)."""
        service = self.config.service
        return InstanceSpec(slot=slot, release=release, port=service.port, command=service.command)

    def status(self) -> SandboxStatus:
        endpoint = self.backend.lb()
        runtime = self.backend.lb_runtime()
        stats = runtime.stats() if runtime is not None else {}
        rows = []
        for item in self.backend.instances():
            lb_row = stats.get(item.name)
            rows.append(
                InstanceStatus(
                    name=item.name,
                    release=item.release,
                    digest=item.digest,
                    state=item.state,
                    health=self._health(item),
                    lb_state=lb_row.status if lb_row else "absent",
                    lb_weight=lb_row.weight if lb_row else 0,
                    address=":".join(map(str, item.lb_address)) if item.lb_address else "",
                    local_url=item.local_url or "",
                    host=item.host,
                    release_dir=item.release_dir,
                )
            )
        return SandboxStatus(
            cluster=self.config.cluster.name,
            backend=self.backend.name,
            lb_url=endpoint.url if endpoint else None,
            runtime_api=f"{endpoint.runtime_host}:{endpoint.runtime_port}" if endpoint else None,
            instances=rows,
        )

    def down(self) -> list[str]:
        """Remove everything the backend made for this cluster (built releases stay a cache)."""
        return self.backend.teardown()

    # -- helpers -----------------------------------------------------------------------------

    def _release_for_up(self, requested: str | None, running: list[Instance]) -> str:
        current = sorted({item.release for item in running})
        if requested is not None:
            self.config.release(requested)
            if current and current != [requested]:
                raise UsageError(
                    f"cluster {self.config.cluster.name!r} runs {', '.join(current)}; "
                    f"sandbox.up does not change releases — use `invoke deploy --release "
                    f"{requested}` (or `invoke sandbox.down` first)"
                )
            return requested
        if len(current) == 1:
            return current[0]
        if len(current) > 1:
            raise UsageError(
                f"cluster {self.config.cluster.name!r} runs several releases "
                f"({', '.join(current)}); pass --release to choose one"
            )
        if not self.config.releases:
            raise ConfigError(
                "no releases declared under 'releases'; declare one or pass --release"
            )
        return next(iter(self.config.releases))

    def _health(self, item: Instance) -> str:
        if item.state != "running":
            return "unknown"
        status = self.backend.probe(item.name, self.config.service.health_path, timeout_s=0.5)
        return "ready" if status == 200 else "not-ready"
