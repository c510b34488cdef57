"""Locust plugin that mirrors idempotent requests to a shadow candidate and logs both answers.

Loaded as an extra locustfile (like the request logger). ``$CAUTIOUS_SHADOW_TARGET`` is a file
the rollout writes the candidate's URL into while it runs out of rotation (and empties after);
the plugin re-reads it twice a second. While it names a URL, for a sample
(``$CAUTIOUS_SHADOW_SAMPLE``, a fraction, default 1) of the GET and HEAD requests that got an
answer, the same method and path go to the candidate, in a greenlet of their own so the user's
pacing is untouched. Each pair is one JSON line in ``$CAUTIOUS_SHADOW_LOG``
(``cautious.measure.shadow`` reads and compares them): ``t, method, name, path, status, body,
shadow_status, shadow_body``. Bodies are cut at 64 KiB.

HAProxy 2.6 has no traffic mirroring without SPOE, so the load generator does it. At most
``_CONCURRENT`` mirrors are in flight; a request that finds them all busy is not mirrored, so a
slow candidate thins the sample instead of slowing the load.

This module imports locust (gevent's monkey-patching): only a Locust subprocess loads it.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from typing import IO, Any, cast
from urllib.parse import urlsplit

import gevent
from gevent.pool import Pool
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from cautious.measure.shadow import SHADOW_LOG_ENV, SHADOW_SAMPLE_ENV, SHADOW_TARGET_ENV

__all__ = ["ShadowMirror"]

_MIRRORED = frozenset({"GET", "HEAD"})
_MAX_BODY = 64 * 1024
_CONCURRENT = 20
_TIMEOUT_S = 2.0
_TARGET_POLL_S = 0.5


class ShadowMirror:
    """Mirrors sampled requests and appends the pairs to the shadow log."""

    def __init__(self, target_file: str, log_path: str, sample: float) -> None:
        self.target_file = target_file
        self.shadow_url = ""  # mirror only while the target file names a URL
        self.sample = sample
        self._pool = Pool(_CONCURRENT)
        self._rng = random.Random()
        self._file: IO[str] = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def on_request(
        self,
        request_type: str,
        name: str,
        response: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        """Mirror this request if it is idempotent, answered, sampled and a mirror is free."""
        status = int(getattr(response, "status_code", 0) or 0)
        if not self.shadow_url or request_type not in _MIRRORED or not status or not url:
            return
        if self._pool.full():
            return
        if self._rng.random() >= self.sample:
            return
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = _text(getattr(response, "content", b"") or b"")
        started = start_time if start_time is not None else time.time()
        self._pool.spawn(
            self._mirror, self.shadow_url, request_type, name, path, status, body, started
        )

    def follow_target(self) -> None:
        """Re-read the target file while the file's log is open (the rollout writes it)."""
        while not self._file.closed:
            try:
                with open(self.target_file, encoding="utf-8") as handle:
                    self.shadow_url = handle.read().strip().rstrip("/")
            except OSError:
                self.shadow_url = ""
            gevent.sleep(_TARGET_POLL_S)

    def _mirror(
        self, base: str, method: str, name: str, path: str, status: int, body: str, started: float
    ) -> None:
        shadow_status, shadow_body = _fetch(method, base + path)
        if self._file.closed:
            return
        pair = {
            "t": round(started, 6),
            "method": method,
            "name": name,
            "path": path,
            "status": status,
            "body": body,
            "shadow_status": shadow_status,
            "shadow_body": shadow_body,
        }
        self._file.write(json.dumps(pair, ensure_ascii=False) + "\n")

    def close(self, **_: Any) -> None:
        """Let the mirrors in flight finish (bounded), then close the log."""
        self._pool.join(timeout=_TIMEOUT_S + 1)
        if not self._file.closed:
            self._file.close()


def _fetch(method: str, url: str) -> tuple[int, str]:
    """The candidate's status and body; status 0 when it gave no answer."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as answer:
            return int(answer.status), _text(answer.read(_MAX_BODY))
    except urllib.error.HTTPError as exc:
        return int(exc.code), _text(exc.read(_MAX_BODY))
    except (OSError, ValueError):
        return 0, ""


def _text(content: bytes) -> str:
    return content[:_MAX_BODY].decode("utf-8", errors="replace")


def _sample() -> float:
    raw = os.environ.get(SHADOW_SAMPLE_ENV, "").strip()
    value = float(raw) if raw else 1.0
    if not 0 < value <= 1:
        raise ValueError(f"{SHADOW_SAMPLE_ENV} must be in (0, 1], got {raw!r}")
    return value


def _on_init(environment: Environment, **_: Any) -> None:
    """Attach a mirror when both the target file and the log path are given."""
    target_file = os.environ.get(SHADOW_TARGET_ENV, "").strip()
    log_path = os.environ.get(SHADOW_LOG_ENV, "").strip()
    if not target_file or not log_path or isinstance(environment.runner, MasterRunner):
        return
    mirror = ShadowMirror(target_file, log_path, _sample())
    gevent.spawn(mirror.follow_target)
    _listen(environment.events.request, mirror.on_request)
    _listen(environment.events.quitting, mirror.close)


def _listen(hook: object, handler: object) -> None:
    """Attach ``handler`` to a Locust event hook (whose method carries no annotations)."""
    cast(Any, hook).add_listener(handler)


_listen(events.init, _on_init)
