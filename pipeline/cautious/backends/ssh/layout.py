"""Releases as directories on a host, and the shell scripts that move them.

On every host, under the configured root::

    releases/<label>-<digest12>/   an unpacked release: the build context, release.env, run,
                                   and .complete (its full digest, written last)
    instances/<port>/current      → the release this instance runs (switched atomically)
    instances/<port>/instance.env  the instance's own variables (port, name)
    current                       → the release every instance of the host runs, once they agree

Each instance has its own ``current`` because two instances of one host run different releases
mid-rollout (and blue and green run side by side). A switch is ``ln -sfn`` to a temporary link
and ``mv -T`` over the old one: ``rename(2)`` is atomic, so a supervisor restarting the
instance at any moment sees the old release or the new one, never a missing link.

The scripts are plain POSIX sh with every value quoted, built here as text so they are tested
without a host.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "EXIT_DIGEST_MISMATCH",
    "EXIT_DISK_FULL",
    "EXIT_NOT_WRITABLE",
    "EXIT_RELEASE_MISSING",
    "InstanceLine",
    "Layout",
    "parse_instance_lines",
    "release_dir_name",
]

EXIT_NOT_WRITABLE = 10
EXIT_DISK_FULL = 11
EXIT_DIGEST_MISMATCH = 12
EXIT_RELEASE_MISSING = 20
_PRESENT = "present"


def release_dir_name(label: str, digest: str) -> str:
    """``v2-3f2a9c1b04de``: readable in ``ls``, unique per build."""
    return f"{label}-{digest.removeprefix('sha256:')[:12]}"


@dataclass(frozen=True)
class InstanceLine:
    """One instance as a host reports it: port, link target, full digest, status exit code."""

    port: int
    target: str
    digest: str
    status_code: int

    @property
    def label(self) -> str:
        """The label part of ``<label>-<digest12>`` (labels may contain dashes)."""
        name = self.target.rstrip("/").rsplit("/", 1)[-1]
        return name.rsplit("-", 1)[0] if "-" in name else name


def parse_instance_lines(text: str) -> list[InstanceLine]:
    """Lines ``port|target|digest|status`` printed by :meth:`Layout.report_instances`."""
    found = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        port, target, digest, status = parts
        code = int(status) if status.lstrip("-").isdigit() else 1
        found.append(InstanceLine(int(port), target, digest, code))
    return found


@dataclass(frozen=True)
class Layout:
    """The paths under one host's root, and the scripts that act on them."""

    root: str

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def incoming(self) -> str:
        return f"{self.root}/.incoming"

    def release(self, name: str) -> str:
        return f"{self.releases}/{name}"

    def instance(self, port: int) -> str:
        return f"{self.root}/instances/{port}"

    def upload_path(self, name: str) -> str:
        return f"{self.incoming}/{name}.tar.gz"

    # -- shipping ------------------------------------------------------------------------------

    def check_before_upload(self, name: str, need_kib: int) -> str:
        """Exit 0 printing ``present`` (nothing to ship) or nothing (room to ship), else
        EXIT_NOT_WRITABLE / EXIT_DISK_FULL with one line — before anything is written."""
        q = shlex.quote
        return f"""
root={q(self.root)}; release={q(self.release(name))}; need={need_kib}
if [ -f "$release/.complete" ]; then echo {_PRESENT}; exit 0; fi
for dir in "$root" "$root/releases" "$root/instances" "$root/.incoming"; do
  if [ ! -d "$dir" ] && ! mkdir -p "$dir" 2>/dev/null; then
    echo "cannot create $dir as $(id -un)" >&2; exit {EXIT_NOT_WRITABLE}
  fi
  probe="$dir/.cautious-probe-$$"
  if ! ( : > "$probe" ) 2>/dev/null; then
    echo "$dir is not writable by $(id -un)" >&2; exit {EXIT_NOT_WRITABLE}
  fi
  rm -f "$probe"
done
free=$(df -Pk "$root/.incoming" | awk 'NR == 2 {{ print $4 }}')
if [ "${{free:-0}}" -lt "$need" ]; then
  echo "$root has $free KiB free, the release needs $need KiB" >&2; exit {EXIT_DISK_FULL}
fi
"""

    @staticmethod
    def is_present(stdout: str) -> bool:
        return stdout.strip() == _PRESENT

    def unpack(self, name: str, digest: str) -> str:
        """Verify the upload's sha256, unpack beside the releases, then rename into place."""
        q = shlex.quote
        hex_digest = digest.removeprefix("sha256:")
        return f"""
set -e
incoming={q(self.incoming)}; tarball={q(self.upload_path(name))}; release={q(self.release(name))}
unpack="$incoming/{name}.unpack"
sum=$(sha256sum "$tarball" | cut -d ' ' -f 1)
if [ "$sum" != {q(hex_digest)} ]; then
  rm -f "$tarball"; echo "upload corrupted: sha256 $sum, expected {hex_digest}" >&2
  exit {EXIT_DIGEST_MISMATCH}
fi
rm -rf "$unpack"; mkdir "$unpack"
if ! tar -xzf "$tarball" -C "$unpack" 2>"$incoming/{name}.err"; then
  reason=$(tail -n 1 "$incoming/{name}.err"); rm -rf "$unpack" "$tarball" "$incoming/{name}.err"
  echo "unpacking failed: $reason" >&2; exit 1
fi
rm -f "$incoming/{name}.err"
echo {q(digest)} > "$unpack/.complete"
rm -rf "$release"
mv -T "$unpack" "$release"
rm -f "$tarball"
"""

    def prune(self, keep: int) -> str:
        """Remove all but the ``keep`` newest releases; never one a ``current`` link names."""
        q = shlex.quote
        return f"""
root={q(self.root)}
cd "$root/releases" || exit 0
in_use=$(for link in "$root/current" "$root"/instances/*/current; do
  [ -L "$link" ] && basename "$(readlink "$link")"; done)
ls -1t | tail -n +{keep + 1} | while read -r dir; do
  if ! printf '%s\\n' "$in_use" | grep -qxF "$dir"; then rm -rf -- "$dir"; echo "$dir"; fi
done
"""

    # -- going live ----------------------------------------------------------------------------

    def switch(self, port: int, name: str, env: Mapping[str, str]) -> str:
        """Point the instance at release ``name`` (atomically) and write its environment."""
        q = shlex.quote
        env_lines = "".join(f"{key}={q(value)}\n" for key, value in sorted(env.items()))
        return f"""
set -e
release={q(self.release(name))}; instance={q(self.instance(port))}
if [ ! -f "$release/.complete" ]; then
  echo "release {name} is not on this host" >&2; exit {EXIT_RELEASE_MISSING}
fi
mkdir -p "$instance"
printf '%s' {q(env_lines)} > "$instance/instance.env.tmp"
mv -f "$instance/instance.env.tmp" "$instance/instance.env"
ln -sfn "$release" "$instance/.current.tmp"
mv -T "$instance/.current.tmp" "$instance/current"
touch "$release"
{self._host_current()}
"""

    def forget(self, port: int) -> str:
        """The instance is stopped: it runs no release any more."""
        return f"""
rm -f {shlex.quote(self.instance(port))}/current
{self._host_current()}
"""

    def _host_current(self) -> str:
        """Move the host's ``current`` when every instance left on it runs one release.

        Instances on one host switch at the same moment (stop-and-go, blue-green): a lock
        makes each read-and-move whole, and the temporary link is this shell's own.
        """
        q = shlex.quote
        return f"""
(
flock 9
targets=$(for link in {q(self.root)}/instances/*/current; do
  [ -L "$link" ] && readlink "$link"; done | sort -u)
if [ -n "$targets" ] && [ "$(printf '%s\\n' "$targets" | wc -l)" -eq 1 ]; then
  ln -sfn "$targets" {q(self.root)}/.current.$$
  mv -T {q(self.root)}/.current.$$ {q(self.root)}/current
fi
) 9>{q(self.root)}/.current.lock
"""

    # -- reading -------------------------------------------------------------------------------

    def report_instances(self, status_commands: Mapping[int, str]) -> str:
        """One line per instance that has a ``current`` link: ``port|target|digest|status``."""
        q = shlex.quote
        blocks = []
        for port, status in status_commands.items():
            link = f"{self.instance(port)}/current"
            blocks.append(
                f"""
if [ -L {q(link)} ]; then
  target=$(readlink {q(link)}); digest=$(cat {q(link)}/.complete 2>/dev/null || true)
  ( {status} ) >/dev/null 2>&1; code=$?
  echo "{port}|$target|$digest|$code"
fi"""
            )
        return "".join(blocks) + "\ntrue\n"
