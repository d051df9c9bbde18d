"""Notifications: what happened to an experiment, sent to webhooks once the decision stands.

`events(old, new)` compares two experiment records (as checkpointed by two `up`s) and names what a
person should hear about: the experiment started, an iteration was held, a control was applied, the
stage changed (completed, failed, rolled back), a version was promoted. Each event has a `key`
(experiment, its start, iteration, kind and the time it was decided): the same decision always gives
the same key, so a receiver that sees a key twice can drop the second. `deliver` posts each event to
each webhook once, with a short deadline, and returns one result per delivery. A failed delivery is
recorded, never raised: a notification can neither block nor change a decision. Results never carry
the webhook's URL (it is a secret). When they are sent is rollout/notifier.py's business.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import requests
from pydantic import AfterValidator, ConfigDict
from pydantic import dataclasses as pydantic_dataclasses
from pydantic_core import PydanticCustomError
from urllib3.util import parse_url

from rollout.core.record import ExperimentRecord
from rollout.core.state import COMPLETED, FAILED, FINAL_STAGES, RUNNING
from rollout.core.text import weight_split

TIMEOUT_SECONDS = 2.0
"""One attempt per event and webhook, no retries: an `up` waits at most this long per delivery, all of it
(name resolution, connect, TLS, sending, the answer's headers and body): a receiver that answers one byte
at a time is cut off at the deadline like one that does not answer."""

Format = Literal["generic", "slack"]
"""The payload's shape: the generic JSON document, or a Slack message (`text`)."""
FORMATS: tuple[str, ...] = get_args(Format)


@dataclass(frozen=True)
class Event:
    kind: str
    """started, held, frozen, control, completed, failed, rolled-back, promoted."""
    reason: str
    record: ExperimentRecord
    at: float = 0.0
    """When it was decided: the time of the history entry it comes from (or the experiment's start)."""
    rank: int = 0
    """How many history entries of the same millisecond come before the one it comes from (0: the first)."""

    @property
    def decided(self) -> dict[str, Any]:
        """The state the message reports: the record's it is sent with."""
        state = self.record.state
        return {"stage": str(state.stage), "weights": dict(state.weights), "winner": state.winner,
                "promoted": state.promoted}

    @property
    def key(self) -> str:
        """The idempotency key: experiment, its start, iteration, kind, decision time (ms), a digest of the
        reason and of the state the message reports (two decisions in one millisecond differ there), then, for
        the second and later history entries of one millisecond, their rank (pause, resume, pause in one
        millisecond: three keys). One key, one message: a notifier killed after sending sends the same keys
        again at the next `up`; if the experiment moved on in between, the resend reports the newer state
        under a new key."""
        state = self.record.state
        told = json.dumps([self.reason, self.decided], sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(told.encode()).hexdigest()[:8]
        rank = f"/{self.rank}" if self.rank else ""
        return (f"{self.record.name}/{_ms(state.started_at)}/{state.iteration}/{self.kind}/{_ms(self.at)}/{digest}"
                f"{rank}")

    def payload(self, fmt: str, applied: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The message; `applied` is what the cluster was given for this decision (the route's weights)."""
        name, state = self.record.name, self.record.state
        weights = dict(state.weights)
        written = dict((applied or {}).get("weights") or {})
        if fmt == "slack":
            done = f"; applied: {weight_split(written)}" if written else ""
            return {"text": f"[{name}] {self.kind}: {self.reason} (stage {state.stage}, "
                            f"iteration {state.iteration}, {weight_split(weights)}{done})"}
        decided = self.decided
        return {"source": "seldon-rollout", "key": self.key, "event": self.kind, "experiment": name,
                "reason": self.reason, "iteration": state.iteration, **decided, "time": self.at,
                "decided": decided, "applied": {"weights": written or None}}


def _ms(value: float) -> int:
    return round(value * 1000)


def _new_entries(old: ExperimentRecord | None, new: ExperimentRecord) -> list[Mapping[str, Any]]:
    """The history entries `new` added since `old` (one `up` may add two: a control, then an iteration)."""
    entries: list[Mapping[str, Any]] = list(new.state.history)
    before = old.state.history[-1] if old is not None and old.state.history else None
    if before is None:
        return entries
    for i in range(len(entries) - 1, -1, -1):
        if entries[i] == before:
            return entries[i + 1:]
    return entries[-1:]  # the old last entry fell out of the bounded history: at least the newest


def _first_message(record: ExperimentRecord) -> str:
    return record.state.messages[0] if record.state.messages else ""


def same_experiment(old: ExperimentRecord | None, new: ExperimentRecord) -> bool:
    """Both records are of one experiment: the same name, started at the same time."""
    return old is not None and old.name == new.name and _ms(old.state.started_at) == _ms(new.state.started_at)


def events(old: ExperimentRecord | None, new: ExperimentRecord) -> list[Event]:
    """What happened between two records, in the order a person would tell it.

    With no old record of the same experiment (a new one, a renamed one, or an unreadable record), the
    experiment's start is the first event, followed by what its first `up` recorded (e.g. a control left
    in the stack file, not applied)."""
    found = []
    state = new.state
    was_stage, was_promoted = (old.state.stage, old.state.promoted) if old is not None else (RUNNING, None)
    if not same_experiment(old, new):
        if state.stage not in FINAL_STAGES:  # (an unreadable stored record ends as Failed: told below)
            found.append(Event("started", _first_message(new), new, state.started_at))
        old, was_stage, was_promoted = None, RUNNING, None
    by_control = False
    added = _new_entries(old, new)
    history = list(state.history)
    for index, entry in enumerate(added, start=len(history) - len(added)):
        at = _time(entry.get("time"))
        rank = sum(1 for earlier in history[:index] if _ms(_time(earlier.get("time"))) == _ms(at))
        if entry.get("control"):
            by_control = True  # the control's own event says what it did to the stage
            control = entry["control"]
            summary = control.get("summary") or control.get("action") if isinstance(control, Mapping) else control
            found.append(Event("control", f"{summary}: {entry.get('reason', '')}", new, at, rank))
        elif entry.get("frozen"):
            by_control = True  # "frozen" says the stage is Paused, for a person to decide
            found.append(Event("frozen", str(entry.get("reason") or _first_message(new)), new, at, rank))
        elif entry.get("held"):
            found.append(Event("held", str(entry.get("reason") or _first_message(new)), new, at, rank))
    decided_at = _time(state.history[-1].get("time")) if state.history else state.last_iteration_at
    if state.stage != was_stage and not by_control:
        if state.stage == FAILED:
            message = _first_message(new)
            kind = "rolled-back" if message.startswith("Rolled back") else "failed"
            found.append(Event(kind, message, new, decided_at))
        elif state.stage == COMPLETED:
            found.append(Event("completed", _first_message(new), new, decided_at))
        else:
            found.append(Event(str(state.stage).lower(), _first_message(new), new, decided_at))
    if state.promoted and state.promoted != was_promoted:
        found.append(Event("promoted", f"{state.promoted} promoted", new, decided_at))
    return found


def _time(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def webhook_url_problem(value: str) -> str | None:
    """What keeps `value` from being posted to, read with the HTTP client's own parser (urllib3), None when
    nothing. Never quotes the URL, nor any part of it (the host included): it is a secret."""
    try:
        parts = parse_url(value)
        host = (parts.host or "").strip("[]")
        if parts.scheme not in ("http", "https") or not host:
            return "must be an http:// or https:// URL with a host (not shown: it is secret)"
        host.encode("idna")  # what urllib3 does before it connects: an empty or long label fails there
        requests.Request("POST", value).prepare()  # and what requests checks before it sends (no I/O)
    except Exception:  # (a LocationParseError quotes the host; any failure is the same answer)
        return "is not a URL the HTTP client can use: a host name with an empty or too long label, a bad " \
               "port or a character out of place (not shown: it is secret)"
    return None


def _webhook_url(value: str) -> str:
    """Never echoed in a message: the URL is a secret (it often carries a token)."""
    problem = webhook_url_problem(value)
    if problem:
        raise PydanticCustomError("url", "{problem}", {"problem": problem})
    return value


@pydantic_dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Webhook:
    """Where notifications go: a URL (secret) and the payload's format; the stack's `notifications` items."""

    url: Annotated[str, AfterValidator(_webhook_url)] = field(repr=False)
    format: Format = "generic"


def _post(http: requests.Session, url: str, payload: dict[str, Any], timeout: float,
          outcome: dict[str, Any]) -> None:
    try:
        outcome["response"] = http.post(url, json=payload, timeout=timeout, allow_redirects=False)
    except BaseException as err:  # (any failure is a failed delivery, told by its kind)
        outcome["error"] = err


def _error(err: BaseException, timeout: float) -> str:
    """What went wrong, without the exception's text: it would quote the URL (host, path or token)."""
    if isinstance(err, requests.Timeout):
        return f"no answer within {timeout:g}s"
    return f"not delivered ({type(err).__name__})"


def deliver(found: Sequence[Event], hooks: Sequence[Webhook], session: requests.Session | None = None,
            timeout: float = TIMEOUT_SECONDS, applied: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Post every event to every webhook once; one result per delivery (`hook` is the index, `key` the event's).

    Each delivery has `timeout` seconds in all; any exception is a failed delivery (recorded, never raised).
    A delivery past its deadline is left to finish in a daemon thread, which its own socket timeouts end."""
    results: list[dict[str, Any]] = []
    if not found or not hooks:
        return results
    http = session or requests.Session()
    for event in found:
        for index, hook in enumerate(hooks):
            result: dict[str, Any] = {"event": event.kind, "key": event.key, "hook": index, "ok": False}
            outcome: dict[str, Any] = {}
            try:
                payload = event.payload(hook.format, applied)
                worker = threading.Thread(target=_post, args=(http, hook.url, payload, timeout, outcome),
                                          name="webhook", daemon=True)
                worker.start()
                worker.join(timeout)
            except Exception as err:  # (never raised: a notification cannot fail an `up`)
                outcome = {"error": err}
            response = outcome.get("response")
            if "error" in outcome:
                result["error"] = _error(outcome["error"], timeout)
            elif response is None:
                result["error"] = f"no answer within {timeout:g}s"
            else:
                result["status"] = response.status_code
                result["ok"] = 200 <= response.status_code < 300
                if not result["ok"]:
                    result["error"] = f"HTTP {response.status_code}"
            results.append(result)
    return results
