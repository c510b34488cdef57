"""The one typed schema for ``cautious.yaml``, and how flags go on top of it.

Every value the product uses passes through :func:`load_config`, so a wrong value is caught
before anything touches the world, and the error names the key path, the bad value and what is
allowed (``ConfigError``, exit code 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cautious import redaction
from cautious.backends.registry import BACKENDS
from cautious.exceptions import ConfigError
from cautious.inputs import clip, invalid_value, load_yaml, read_text, shorten

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_NAME",
    "SSH_DEFAULT_COMMANDS",
    "CanaryConfig",
    "CanaryDetectConfig",
    "ClaimsConfig",
    "ClusterConfig",
    "Config",
    "DependencyConfig",
    "Env",
    "EnvEntry",
    "HookConfig",
    "LbConfig",
    "LegConfig",
    "LoadConfig",
    "ReleaseConfig",
    "RolloutConfig",
    "ServiceConfig",
    "SshConfig",
    "SshHostConfig",
    "StrategyName",
    "env_values",
    "find_config_path",
    "load_config",
    "secret_env",
]

CONFIG_ENV_VAR = "CAUTIOUS_CONFIG"
DEFAULT_CONFIG_NAME = "cautious.yaml"
MAX_CONFIG_BYTES = 1024 * 1024
HAPROXY_MAX_TIMEOUT_MS = 2_147_483_647  # HAProxy refuses longer timers ("timer overflow")

StrategyName = Literal["rolling", "stop-and-go", "blue-green", "canary"]
_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


class _Section(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default); numbers are
    finite; a boolean is never read as a number (pydantic alone takes ``true`` for 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: object, info: ValidationInfo) -> object:
        annotation = cls.model_fields[str(info.field_name)].annotation
        if _holds_bool(value) and not _admits_bool(annotation):
            raise ValueError("a boolean (true/false, yes/no) is not allowed here")
        return value


def _holds_bool(value: object) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_bool(item) for pair in value.items() for item in pair)
    if isinstance(value, list | tuple):
        return any(_holds_bool(item) for item in value)
    return isinstance(value, bool)


def _admits_bool(annotation: object) -> bool:
    """Whether a field's type takes booleans (a nested section checks its own fields)."""
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return True
    return any(_admits_bool(argument) for argument in get_args(annotation))


class EnvEntry(_Section):
    """A variable written with options: ``API_URL: {value: "…", secret: true}``."""

    value: str
    secret: bool = Field(False, description="hide the value everywhere Cautious writes")


def _env_names(env: dict[str, str | EnvEntry]) -> dict[str, str | EnvEntry]:
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
            raise ValueError(
                f"variable name {shorten(name, 40)} must be letters, digits and '_' "
                "(not starting with a digit)"
            )
    return env


# A variable's value, or {value, secret}. Names that look secret (TOKEN, SECRET, PASSWORD, KEY)
# are secret without the declaration.
Env = Annotated[dict[str, str | EnvEntry], AfterValidator(_env_names)]


def env_values(env: Mapping[str, str | EnvEntry]) -> dict[str, str]:
    """The variables as the service sees them."""
    return {
        name: entry.value if isinstance(entry, EnvEntry) else entry for name, entry in env.items()
    }


def secret_env(env: Mapping[str, str | EnvEntry]) -> dict[str, str]:
    """The secret variables: declared ``secret: true``, or named like a secret."""
    return {
        name: value
        for name, value in env_values(env).items()
        if redaction.looks_secret(name) or getattr(env[name], "secret", False)
    }


class ServiceConfig(_Section):
    """What is deployed: how to build it, how to run it, how to tell it is ready."""

    name: str = Field("sample", pattern=_NAME_PATTERN)
    context: Path = Path("sandbox/app")
    dockerfile: str = "Dockerfile"
    port: int = Field(8000, ge=1, le=65535)
    health_path: str = Field("/ready", pattern=r"^/")
    env: Env = Field(default_factory=dict)
    command: list[str] | None = None
    test_command: str | None = None
    base_image: str = "cautious/base:bookworm"


class ReleaseConfig(_Section):
    """A named release: the service built with this environment overlay."""

    description: str = ""
    env: Env = Field(default_factory=dict)


class ClusterConfig(_Section):
    """The instances of one service behind one load balancer."""

    name: str = Field("sandbox", pattern=_NAME_PATTERN)
    backend: str = "docker"
    instances: int = Field(3, ge=1, le=16)

    @field_validator("backend")
    @classmethod
    def _backend_is_registered(cls, backend: str) -> str:
        """The names in the backend registry are the allowed values (one entry adds one)."""
        if backend not in BACKENDS:
            raise ValueError(f"must be one of: {', '.join(map(repr, sorted(BACKENDS)))}")
        return backend


class LbConfig(_Section):
    """HAProxy's health checks and timeouts for the sandbox."""

    check_interval_ms: int = Field(500, ge=100, le=60_000)
    rise: int = Field(2, ge=1, le=10)
    fall: int = Field(2, ge=1, le=10)
    timeout_connect_ms: int = Field(2_000, ge=100, le=HAPROXY_MAX_TIMEOUT_MS)
    timeout_client_ms: int = Field(30_000, ge=100, le=HAPROXY_MAX_TIMEOUT_MS)
    timeout_server_ms: int = Field(30_000, ge=100, le=HAPROXY_MAX_TIMEOUT_MS)
    retries: int = Field(1, ge=0, le=5)
    redispatch: bool = True


class RolloutConfig(_Section):
    """How a rollout moves the cluster, and the deadlines of its gates."""

    strategy: StrategyName = "rolling"
    batch_size: int = Field(1, ge=1, le=64)
    max_unavailable: int = Field(1, ge=1, le=64)
    drain_timeout_s: float = Field(10.0, gt=0, le=600)
    ready_timeout_s: float = Field(30.0, gt=0, le=1_800)
    stop_grace_s: float = Field(10.0, ge=0, le=600)
    bake_s: float = Field(2.0, ge=0, le=3_600)
    bake_max_error_ratio: float | None = Field(None, ge=0, le=1)
    read_only: bool = Field(
        False, description="stop-and-go: the LB refuses writes while the old release serves reads"
    )
    canary_instances: int = Field(1, ge=1, le=64)
    canary_steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100])
    # A hard ceiling on the canary's error ratio, whatever the judge says (the judge decides).
    canary_max_error_ratio: float = Field(0.2, ge=0, le=1)
    canary_min_requests: int = Field(30, ge=1, le=10_000_000)

    @field_validator("canary_steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int]) -> list[int]:
        if not steps or steps != sorted(set(steps)) or steps[0] <= 0 or steps[-1] != 100:
            raise ValueError("must be increasing percentages ending at 100, e.g. [5, 25, 50, 100]")
        return steps


def _percent(value: object) -> object:
    """``"20 %"`` or ``"20%"`` means 0.2; a plain number is already a fraction."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            return value  # not a number: the field's own validation names it
    return value


_Effect = Annotated[float, Field(gt=0, le=10), BeforeValidator(_percent)]


class CanaryDetectConfig(_Section):
    """The smallest regressions worth a rollback; a canary passes once they are ruled out."""

    error_ratio: _Effect = Field(0.02, le=1, description="absolute: 0.02 (2 %) = +2 points")
    p50: _Effect | None = Field(None, description="relative: 0.2 (20 %) = 20 % slower")
    p90: _Effect | None = None
    p99: _Effect | None = 0.2

    def latency_floors(self) -> dict[float, float]:
        """Each judged latency quantile (0.99) and its relative floor."""
        declared = {0.5: self.p50, 0.9: self.p90, 0.99: self.p99}
        return {level: floor for level, floor in declared.items() if floor is not None}


class CanaryConfig(_Section):
    """The canary judge: what to detect, how sure to be, how long a step may bake."""

    detect: CanaryDetectConfig = Field(default_factory=CanaryDetectConfig)
    false_rollback_rate: float = Field(0.01, gt=0, le=0.2)
    power: float = Field(0.9, ge=0.5, lt=1)
    bake_s: float = Field(30.0, gt=0, le=3_600, description="the bake of each judged step")
    max_extension_s: float = Field(180.0, ge=0, le=3_600)
    baseline_error_ratio: float = Field(
        0.01, ge=0, lt=1, description="the baseline error ratio the planner assumes"
    )
    # Shadow comparison: the canary first runs out of rotation while the load generator mirrors
    # idempotent requests to it; a mismatch ratio above the bound on any endpoint rolls back.
    shadow: bool = False
    shadow_s: float = Field(20.0, gt=0, le=3_600, description="how long requests are mirrored")
    shadow_sample: float = Field(1.0, gt=0, le=1, description="share of GET/HEAD mirrored")
    shadow_max_mismatch_ratio: float = Field(0.0, ge=0, le=1)
    shadow_min_compared: int = Field(50, ge=1, le=10_000_000)
    shadow_ignore_fields: list[str] = Field(
        default_factory=list, description="JSON fields that may differ, e.g. release, users.*.at"
    )
    shadow_ignore_patterns: list[str] = Field(
        default_factory=list, description="regular expressions masked in every string"
    )


class LoadConfig(_Section):
    """The load Locust drives during a rollout."""

    locustfile: Path = Path("sandbox/locustfile.py")
    rate: float = Field(100.0, gt=0, le=10_000)
    users: int = Field(50, ge=1, le=5_000)
    timeout_s: float = Field(2.0, gt=0, le=60)
    warmup_s: float = Field(5.0, ge=0, le=600)
    tail_s: float = Field(5.0, ge=0, le=600)
    workers: int = Field(
        1,
        ge=1,
        le=32,
        description="Locust processes sending load (> 1: a master and this many workers); "
        "one holds about 1,000 req/s",
    )

    @model_validator(mode="after")
    def _users_cover_the_workers(self) -> Self:
        if self.workers > self.users:
            raise ValueError(f"workers ({self.workers}) cannot exceed users ({self.users})")
        return self


class DependencyConfig(_Section):
    """A backing service (a database, a cache) started once per cluster, before the instances,
    on the cluster's network under its ``name``; kept across rollouts, since its data is the
    point."""

    name: str = Field(pattern=_NAME_PATTERN)
    context: Path | None = Field(None, description="build context (on the base image)")
    dockerfile: str = "Dockerfile"
    image: str | None = Field(None, description="an image the engine has, instead of a build")
    port: int = Field(ge=1, le=65535)
    env: dict[str, str] = Field(default_factory=dict)
    ready_command: list[str] = Field(
        default_factory=list, description="runs inside it until it exits 0 (default: the port)"
    )
    ready_timeout_s: float = Field(60.0, gt=0, le=1_800)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.context is None) == (self.image is None):
            raise ValueError("give exactly one of context (to build) or image")
        return self


class HookConfig(_Section):
    """A one-off command of a release image, bounded by its timeout."""

    name: str = Field("hook", pattern=_NAME_PATTERN)
    command: list[str] = Field(min_length=1)
    timeout_s: float = Field(300.0, gt=0, le=86_400)


class LegConfig(_Section):
    """One leg of a three-legged plan: hooks before, a rollout to ``release``, hooks after."""

    name: str = Field(pattern=_NAME_PATTERN)
    release: str
    strategy: StrategyName | None = None
    read_only: bool = False
    before: list[HookConfig] = Field(default_factory=list)
    after: list[HookConfig] = Field(default_factory=list)
    check: list[str] | None = Field(
        None, description="this leg's data check command (default: data_check's)"
    )


class ClaimsConfig(_Section):
    """Availability statements to verify; ``null`` switches one off."""

    success_ratio: float | None = Field(0.999, ge=0, le=1)
    longest_error_window_s: float | None = Field(1.0, ge=0, le=86_400)
    p99_ms: float | None = Field(300.0, gt=0, le=3_600_000)
    failed_requests: int | None = Field(None, ge=0, le=10**12)
    # read-only mode: reads served, and how long writes were refused (by design)
    read_success_ratio: float | None = Field(None, ge=0, le=1)
    write_refused_max_s: float | None = Field(None, ge=0, le=86_400)
    write_failures: int | None = Field(
        None, ge=0, le=10**12, description="writes that failed other than refused by design"
    )
    min_requests: int = Field(100, ge=1, le=10**12)


# The ssh backend's supervisor commands by default: systemd template units, one unit per
# instance port (sample@8000.service).
SSH_DEFAULT_COMMANDS = {
    "restart": "systemctl restart {service}@{port}",
    "stop": "systemctl stop {service}@{port}",
    "status": "systemctl is-active --quiet {service}@{port}",
    "logs": "journalctl --unit {service}@{port} --lines {tail} --no-pager --output cat",
    "kill": "systemctl kill --signal {signal} {service}@{port}",
}


class SshHostConfig(_Section):
    """One machine: where SSH reaches it, who logs in, how many instances it runs."""

    address: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535, description="the SSH port")
    user: str | None = Field(None, description="default: ssh.user")
    instances: int = Field(1, ge=1, le=8)
    ports: list[int] | None = Field(
        None, description="instance ports, running then spare (default: from service.port on)"
    )
    lb_address: str | None = Field(
        None, description="where the load balancer reaches this host's instances (default: address)"
    )

    @model_validator(mode="after")
    def _enough_ports(self) -> Self:
        if self.ports is not None:
            if len(set(self.ports)) != len(self.ports) or not all(
                1 <= port <= 65535 for port in self.ports
            ):
                raise ValueError("ports must be distinct port numbers")
            if len(self.ports) < self.instances:
                raise ValueError(f"{self.instances} instances need at least as many ports")
        return self


class SshConfig(_Section):
    """How Cautious reaches the hosts and drives the service's supervisor on them."""

    hosts: list[SshHostConfig] = Field(default_factory=list)
    user: str = "deploy"
    identity_file: Path | None = Field(None, description="private key (default: the agent's)")
    known_hosts: Path = Field(Path("~/.ssh/known_hosts"), description="the pinned host keys")
    trust_on_first_use: bool = Field(
        False, description="record the key of a host missing from known_hosts instead of refusing"
    )
    root: str = Field("/srv/{service}", pattern=r"^/")
    keep_releases: int = Field(5, ge=2, le=100)
    command: list[str] = Field(
        default_factory=lambda: ["python3", "-u", "app.py"],
        description="what runs in the release directory (the release's ./run executes it)",
    )
    restart_command: str = SSH_DEFAULT_COMMANDS["restart"]
    stop_command: str = SSH_DEFAULT_COMMANDS["stop"]
    status_command: str = SSH_DEFAULT_COMMANDS["status"]
    logs_command: str = SSH_DEFAULT_COMMANDS["logs"]
    kill_command: str = SSH_DEFAULT_COMMANDS["kill"]
    port_env: str = Field(
        "APP_PORT", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the variable the port is in"
    )
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    command_timeout_s: float = Field(60.0, gt=0, le=3_600)
    sandbox_hosts: int = Field(3, ge=1, le=8, description="ssh-sandbox: how many host containers")
    sandbox_disk_mib: int = Field(64, ge=1, le=4_096, description="ssh-sandbox: each host's /srv")


class Config(_Section):
    """The whole of ``cautious.yaml``."""

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    releases: dict[str, ReleaseConfig] = Field(default_factory=dict)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    lb: LbConfig = Field(default_factory=LbConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    ssh: SshConfig = Field(default_factory=SshConfig)
    dependencies: list[DependencyConfig] = Field(default_factory=list)
    legs: list[LegConfig] = Field(default_factory=list)
    data_check: HookConfig | None = None
    state_dir: Path = Path(".cautious")
    reports_dir: Path = Path("reports")
    root: Path = Field(Path("."), exclude=True, description="folder relative paths start from")

    @field_validator("releases")
    @classmethod
    def _release_names_are_tags(
        cls, releases: dict[str, ReleaseConfig]
    ) -> dict[str, ReleaseConfig]:
        for name in releases:
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
                raise ValueError(
                    f"release name {shorten(name, 40)} must be up to 64 lowercase letters, "
                    "digits, '.', '_' or '-'"
                )
        return releases

    @model_validator(mode="after")
    def _remember_secrets(self) -> Self:
        """From here on, this configuration's secret values are redacted wherever written."""
        for _, env in self._environments():
            redaction.remember(secret_env(env).values())
        return self

    def _environments(self) -> list[tuple[tuple[str | int, ...], Mapping[str, str | EnvEntry]]]:
        """Every environment the configuration declares, with where it sits in a dump."""
        return [
            (("service",), self.service.env),
            *((("releases", name), item.env) for name, item in self.releases.items()),
            *((("dependencies", index), item.env) for index, item in enumerate(self.dependencies)),
        ]

    @model_validator(mode="after")
    def _legs_and_dependencies_are_named(self) -> Self:
        """A leg deploys a declared release; names of dependencies and legs are unique."""
        for leg in self.legs:
            if leg.release not in self.releases:
                raise ValueError(f"leg {leg.name!r}: release {leg.release!r} is not declared")
        for what, names in (
            ("dependency", [item.name for item in self.dependencies]),
            ("leg", [item.name for item in self.legs]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"two of {what} names {names} are the same")
        return self

    def path(self, relative: Path) -> Path:
        """A configured path, resolved against the config file's folder."""
        return relative if relative.is_absolute() else (self.root / relative).resolve()

    def release(self, name: str) -> ReleaseConfig:
        """The named release, or a ConfigError listing the known ones."""
        try:
            return self.releases[name]
        except KeyError:
            known = clip(", ".join(sorted(self.releases)) or "none declared", 120)
            raise ConfigError(
                f"release {shorten(name)} is not declared under 'releases' (known: {known})"
            ) from None

    def release_env(self, name: str) -> dict[str, str]:
        """The environment a release runs with: service env, then the release's overlay."""
        return {**env_values(self.service.env), **env_values(self.release(name).env)}

    def public_dump(self) -> dict[str, Any]:
        """The effective configuration as plain data, every secret variable's value masked."""
        dumped = self.model_dump(mode="json")
        for where, env in self._environments():
            section: Any = dumped
            for part in where:
                section = section[part]
            for name in secret_env(env):
                entry = section["env"][name]
                if isinstance(entry, dict):
                    entry["value"] = redaction.REDACTED
                else:
                    section["env"][name] = redaction.REDACTED
        return redaction.redact_data(dumped)


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` first, then ``$CAUTIOUS_CONFIG``, then ``./cautious.yaml``."""
    if explicit is not None and not os.fspath(explicit).strip():
        raise ConfigError(f"--config takes the path of a file, not {shorten(explicit)}")
    if explicit:
        chosen, origin = Path(explicit), "--config"
    elif os.environ.get(CONFIG_ENV_VAR):
        chosen, origin = Path(os.environ[CONFIG_ENV_VAR]), CONFIG_ENV_VAR
    else:
        chosen, origin = Path(DEFAULT_CONFIG_NAME), "the current folder"
    if "\x00" in str(chosen):
        raise ConfigError(f"{origin}: {shorten(str(chosen))} is not a path (it holds a NUL)")
    if not os.path.lexists(chosen):
        raise ConfigError(
            f"no configuration file at {clip(str(chosen), 80)} (from {origin}); "
            f"create {DEFAULT_CONFIG_NAME} or point --config / {CONFIG_ENV_VAR} at one"
        )
    return chosen.resolve()  # what is there, a folder or a FIFO, is for read_text to refuse


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, merge flag overrides (dotted keys, ``None`` = not given) and validate.

    Overrides are merged into the raw document *before* validation, so a bad flag is reported
    with the same key path as a bad line in the file. Secret-looking variables of the process
    environment (a CI token) are redacted from here on, like the configuration's own secrets.
    """
    redaction.remember_environment(os.environ)
    config_path = find_config_path(path)
    raw = _read_yaml(config_path)
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    for dotted, value in flags.items():
        _set_dotted(raw, dotted, value)
    nul = _first_nul(raw)
    if nul is not None:
        origin = "command line" if nul in flags else clip(str(config_path), 80)
        raise ConfigError(f"{origin}: {nul} holds a NUL character, which no value may contain")
    raw["root"] = str(config_path.parent)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path, flags, raw)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    shown = clip(str(path), 80)
    document = load_yaml(read_text(path, "the configuration", MAX_CONFIG_BYTES), shown)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{shown}: the top level must be a mapping of sections, not a value")
    if "root" in document:
        raise ConfigError(f"{shown}: 'root' is not a configuration key; remove it")
    return document


def _first_nul(raw: Mapping[str, Any]) -> str | None:
    """The key path of the first key or text holding a NUL (no program argument can)."""
    pending: list[tuple[str, Any]] = [("", raw)]
    while pending:
        where, node = pending.pop()
        if not isinstance(node, Mapping | list):
            continue
        for key, value in node.items() if isinstance(node, Mapping) else enumerate(node):
            path = f"{where}.{key}".lstrip(".")
            if "\x00" in str(key) or (isinstance(value, str) and "\x00" in value):
                return clip(path, 80)
            pending.append((path, value))
    return None


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def _describe(
    exc: ValidationError, path: Path, flags: Mapping[str, Any], raw: Mapping[str, Any]
) -> str:
    """One line: where, which key, which value, what is allowed (and how many more errors)."""
    every = exc.errors()
    errors = [error for error in every if not _union_string_miss(error, every)]
    first = errors[0]
    loc = _plain_loc(first["loc"])
    key = clip(".".join(str(part) for part in loc), 80)
    origin = "command line" if key in flags else clip(str(path), 80)
    if first["type"] == "extra_forbidden":
        allowed = clip(", ".join(_allowed_keys(loc[:-1])), 120)
        message = f"{origin}: unknown key {key!r}; allowed here: {allowed}"
    else:
        secret = _is_secret_at(loc, raw) and first["type"] != "missing"
        shown = {**first, "loc": loc, "input": _Masked()} if secret else {**first, "loc": loc}
        message = f"{origin}: {invalid_value(shown)}"
    more = len(errors) - 1
    return message + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


class _Masked:
    """Stands in for a secret value in a message."""

    def __repr__(self) -> str:
        return redaction.REDACTED


_UNION_TAGS = {"str", "int", "float", "bool", "EnvEntry"}


def _union_string_miss(error: Any, errors: list[Any]) -> bool:
    """``{value: …}`` given for ``str | EnvEntry``: the str branch's miss is noise when the
    EnvEntry branch has its own, more telling error."""
    loc = error["loc"]
    return (
        loc[-1:] == ("str",)
        and isinstance(error["input"], Mapping)
        and any(other["loc"][: len(loc) - 1] == loc[:-1] for other in errors if other != error)
    )


def _plain_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """An error's key path without pydantic's names of the union member that was tried."""
    return tuple(part for part in loc if part not in _UNION_TAGS)


def _is_secret_at(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> bool:
    """Whether the value at ``loc`` is an env variable's that is, or may be, secret."""
    if "env" not in loc or loc.index("env") + 1 >= len(loc):
        return False
    at = loc.index("env")
    node: Any = raw
    for part in loc[: at + 2]:
        node = node.get(part) if isinstance(node, Mapping) else None
    return redaction.looks_secret(str(loc[at + 1])) or isinstance(node, Mapping)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a section accepts, found by walking the schema along the error's path."""
    model: type[BaseModel] = Config
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        found = _section_in(field.annotation) if field is not None else None
        if found is None:
            return []
        model, contained = found
        if contained:
            parts = parts[1:]  # the list index, or the mapping key (a release's name)
    return sorted(name for name in model.model_fields if name != "root")


def _section_in(annotation: object) -> tuple[type[BaseModel], bool] | None:
    """The section type a field holds, and whether it sits in a list or a mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for argument in get_args(annotation):
        found = _section_in(argument)
        if found is not None:
            origin = getattr(annotation, "__origin__", None)
            return found[0], found[1] or origin in (list, dict)
    return None
