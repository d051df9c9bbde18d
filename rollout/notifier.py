"""The Notifier dynamic resource: tells webhooks about decisions that stand, each once.

The Experiment decides; the routing and the models apply the decision; then this resource, which
depends on all of them, sends what happened. So an event is sent only when

- the engine has checkpointed the decision: the Experiment's new outputs are this resource's input,
  and the engine saves a resource's outputs before it starts the resources that depend on it;
- the cluster has been given it: Pulumi does not update this resource when the VirtualService or a
  SeldonDeployment failed to update (the next `up` retries them, and then tells).

What was told is this resource's own state: its outputs keep the record it last told about, and the
next `up` tells what changed since (`events(told, record)`), however many `up`s were killed or
failed in between. An `up` killed after sending but before this resource was checkpointed sends the
same events again at the next `up`, with the same keys (a key is the decision's identity: experiment,
start, iteration, kind, decision time), so a receiver that keeps the keys it saw gets each once. A
failed delivery is recorded in `deliveries` and not retried (a notification never blocks an `up`).

Created when a stack first sets `notifications`: an experiment already under way is not announced
again (only what happens from then on); a new one (iteration 0) is announced as started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult
from pydantic import ValidationError

from rollout.core.record import ExperimentRecord
from rollout.core.state import StateError
from rollout.notify import Webhook, deliver, events, same_experiment
from rollout.provider import has_unknowns, plain

TOLD_KEYS = ("name", "spec", "stage", "startedAt", "lastIterationAt", "iteration", "weights", "winner",
             "promoted", "history", "messages")
"""The parts of the experiment record an event is made of (not the algorithm's evidence)."""

KEYS_KEPT = 50
"""How many of the last keys sent the outputs keep (for people and tests; receivers keep their own)."""


def told_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: plain(record.get(k)) for k in TOLD_KEYS}


def webhooks(raw: Any) -> list[Webhook]:
    """The `webhooks` input (the stack's `notifications`: a secret list of url and format, checked by the
    stack's schema); one the schema would refuse is dropped, never blocking an `up`."""
    hooks = []
    for h in raw if isinstance(raw, (list, tuple)) else ():
        try:
            hooks.append(Webhook(h["url"], h.get("format") or "generic"))
        except (TypeError, KeyError, ValidationError):
            continue
    return hooks


def _outputs(record: Mapping[str, Any], applied: Any, deliveries: list[dict[str, Any]],
             sent: list[str]) -> dict[str, Any]:
    return {"told": told_record(record), "applied": plain(applied) if isinstance(applied, Mapping) else None,
            "deliveries": deliveries, "sent": sent[-KEYS_KEPT:]}


def readable(raw: Any) -> ExperimentRecord | None:
    """The record in `raw` (an input or the record last told), None when it cannot be read."""
    try:
        return ExperimentRecord.from_outputs(raw) if isinstance(raw, Mapping) else None
    except StateError:
        return None


def _announce(told: Any, props: Mapping[str, Any], sent: list[str]) -> dict[str, Any]:
    raw, applied = props.get("record"), props.get("applied")
    applied = applied if isinstance(applied, Mapping) else None
    record = readable(raw)
    if record is None:  # (the Experiment always writes a readable record; never raise for one that is not)
        return {"told": told if isinstance(told, Mapping) else None, "applied": applied, "deliveries": [],
                "sent": sent[-KEYS_KEPT:]}
    found = events(readable(told), record)
    deliveries = deliver(found, webhooks(props.get("webhooks")), applied=applied) if found else []
    keys = [d["key"] for d in deliveries if d.get("ok")]
    assert isinstance(raw, Mapping)
    return _outputs(raw, applied, deliveries, [*sent, *dict.fromkeys(keys)])


class NotifierProvider(ResourceProvider):
    """Sends the events between the record last told and the record now checkpointed."""

    serialize_as_secret_always = False

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        record, applied = news.get("record"), news.get("applied")
        if has_unknowns(record) or has_unknowns(applied):
            return DiffResult(changes=True)
        told = olds.get("told")
        changed = not isinstance(record, Mapping) or told != told_record(record) \
            or olds.get("applied") != (plain(applied) if isinstance(applied, Mapping) else None)
        return DiffResult(changes=changed)

    def create(self, props: dict[str, Any]) -> CreateResult:
        record = readable(props.get("record"))
        if record is None or record.state.iteration == 0:
            return CreateResult(id_="notifier", outs=_announce(None, props, []))
        # An experiment already under way when the stack set `notifications`: told from now on.
        return CreateResult(id_="notifier", outs=_outputs(record.to_outputs(), props.get("applied"), [], []))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        told = olds.get("told")
        sent = [k for k in olds.get("sent") or [] if isinstance(k, str)] if isinstance(olds.get("sent"), list) else []
        record = readable(news.get("record"))
        if record is not None and not same_experiment(readable(told), record):
            sent = []
        return UpdateResult(outs=_announce(told, news, sent))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class Notifier(pulumi.dynamic.Resource, module="rollout", name="Notifier"):
    """Webhook notifications of an experiment's decisions, after the cluster was given them."""

    deliveries: pulumi.Output[list[dict[str, Any]]]
    sent: pulumi.Output[list[str]]

    def __init__(self, name: str, *, record: pulumi.Input[Mapping[str, Any]],
                 applied: pulumi.Input[Mapping[str, Any]], webhooks: pulumi.Input[list[Mapping[str, Any]]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {"record": record, "applied": applied, "webhooks": pulumi.Output.secret(webhooks),
                                 "told": None, "deliveries": None, "sent": None}
        super().__init__(NotifierProvider(), name, props, opts)
