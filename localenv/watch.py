"""One kind of object kept in step with the API server: list, then watch from the list's resourceVersion.

The `kubernetes` client does the HTTP, TLS and authentication; this is the informer loop around
it, in one thread per kind:

- list (the cache becomes exactly the list), then watch from its resourceVersion, applying each
  ADDED, MODIFIED and DELETED event to the cache and setting `changed`;
- a watch the server ends (its `timeoutSeconds`) is resumed from the last resourceVersion seen
  (bookmarks included);
- 410 Gone (the resourceVersion was compacted away) lists again;
- 404 (the CRD is not installed yet) is an empty kind, listed again every `NOT_FOUND_RETRY` s;
- 429 (a fresh API server answers "storage is (re)initializing" just after a CRD is installed)
  waits for its Retry-After (at most `RETRY_AFTER_MAX` s), other failures back off from 0.2 s to 5 s.
A problem is logged when it appears and when it clears, not on every retry.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

Obj = dict[str, Any]

WATCH_SECONDS = 300
"""The server ends each watch after this long; it is then resumed from the last resourceVersion."""
CONNECT_SECONDS = 5.0
LIST_READ_SECONDS = 30.0
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
RETRY_AFTER_MAX = 10.0
NOT_FOUND_RETRY = 2.0


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def retry_after(err: ApiException, default: float) -> float:
    """The seconds a 429's Retry-After asks for (bounded), else `default`."""
    headers = err.headers or {}
    try:
        return min(RETRY_AFTER_MAX, max(0.0, float(headers.get("Retry-After", ""))))
    except ValueError:
        return default


class WatchedKind:
    """The cache of one kind; `items()` is a snapshot, `listed` is set after the first list."""

    def __init__(self, what: str, list_fn: Callable[..., Any], kwargs: dict[str, Any],
                 changed: threading.Event) -> None:
        self.what = what
        self._list_fn = list_fn
        self._kwargs = kwargs
        self.changed = changed
        self.listed = threading.Event()
        self.last_error: str | None = None
        self.lists = 0
        """How many successful lists (the first, and one per 410 Gone or 404 retry)."""
        self._objects: dict[tuple[str, str], Obj] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        current = self._watch
        if current is not None:
            current.stop()  # type: ignore[no-untyped-call]

    def join(self, timeout: float) -> None:
        """Wait for the thread to end, stopping again any watch that began after `stop` (a watch
        started just then would not have seen it)."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.stop()
            self._thread.join(0.05)

    def items(self) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(self._objects[k]) for k in sorted(self._objects)]

    def _problem(self, problem: str | None) -> None:
        if problem is None:
            if self.last_error is not None:
                log.info("%s: fine again", self.what)
        elif problem != self.last_error:
            log.warning("%s: %s", self.what, problem)
        self.last_error = problem

    def _replace(self, items: list[Obj]) -> None:
        with self._lock:
            self._objects = {_key(o): o for o in items}
        self.lists += 1
        self.listed.set()
        self.changed.set()

    def _list(self) -> str:
        response = self._list_fn(**self._kwargs, _preload_content=False,
                                 _request_timeout=(CONNECT_SECONDS, LIST_READ_SECONDS))
        body = json.loads(response.data)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ValueError("the list answer has no items")
        self._replace([i for i in body["items"] if isinstance(i, dict)])
        self._problem(None)
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    def _follow(self, resource_version: str) -> str:
        """Apply the watch's events until the server ends it; the last resourceVersion seen."""
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            events = self._watch.stream(  # type: ignore[no-untyped-call]
                self._list_fn, **self._kwargs, resource_version=resource_version, timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True, _request_timeout=(CONNECT_SECONDS, WATCH_SECONDS + 30))
            for event in events:
                obj = event.get("raw_object") or {}
                resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                kind = event.get("type")
                if kind in ("ADDED", "MODIFIED"):
                    with self._lock:
                        self._objects[_key(obj)] = obj
                elif kind == "DELETED":
                    with self._lock:
                        self._objects.pop(_key(obj), None)
                else:
                    continue  # BOOKMARK: only its resourceVersion counts
                self.changed.set()
                if self._stop.is_set():
                    break
        finally:
            self._watch = None
        return resource_version

    def _run(self) -> None:
        resource_version: str | None = None
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list()
                resource_version = self._follow(resource_version)
                delay = BACKOFF_FIRST
                continue
            except ApiException as err:
                if err.status == 410:
                    log.info("%s: watch expired (410 Gone); listing again", self.what)
                    resource_version = None
                    continue
                if err.status == 404:
                    self._replace([])
                    self._problem(None)
                    resource_version = None
                    self._stop.wait(NOT_FOUND_RETRY)
                    continue
                wait = retry_after(err, delay) if err.status == 429 else delay
                problem = f"HTTP {err.status} {err.reason or ''}".strip()
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
                wait, problem = delay, f"{type(err).__name__}: {err}"
            if self._stop.is_set():
                return
            self._problem(problem)
            delay = min(delay * 2, BACKOFF_MAX)
            self._stop.wait(wait)
