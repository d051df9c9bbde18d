"""The Experiment dynamic resource: one iteration per `pulumi up`.

This module is imported again by the provider host on every later `pulumi up`/`destroy` (the
provider object in state refers to it by name): it must import cleanly, do nothing at import time,
and keep its name. The provider object holds no client, config or secret.

- check: validates the whole spec; one failure per problem, naming the field.
- diff: no network; changes when inputs changed, or when running and the interval has passed, or
  when the stored state is unreadable (then `update` reports it). Never raises on a bad old state.
- create: one preflight request to Prometheus (build info): unreachable, TLS or auth failure fails the
  `up` naming prometheusUrl and the cause; otherwise starts the experiment (100% baseline).
- update: when due, queries Prometheus, runs the pure core, returns the whole new state. An unreadable
  stored state ends the experiment (Failed, 100% baseline) with a message naming the field. An edit of
  intervalSeconds (or allowShortInterval) runs create's cadence check again: a refusal fails the `up`
  and changes nothing.
- delete: nothing outside Pulumi to remove.

Errors that are the user's to fix (PreflightError: a wrong URL, refused credentials, a TLS problem)
reach the engine as their message alone: the SDK's provider host formats every exception with its
traceback (`_abort_with_traceback` in `pulumi/dynamic/__main__.py`), which buries the one line that
matters; `_short_user_errors` swaps in a formatter that keeps tracebacks for everything else (bugs).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult
from pulumi.runtime import rpc

from rollout.core.control import Control, seen_at_start
from rollout.core.outcomes import Snapshot
from rollout.core.record import OUTPUT_KEYS, ExperimentRecord
from rollout.core.schema import url_problem
from rollout.core.spec import ExperimentSpec
from rollout.core.state import PRIVATE_OUTPUT, ExperimentState, StateError
from rollout.core.validation import parse_experiment, validate
from rollout.engine import abandon, advance, is_due, start
from rollout.metrics.collect import collect_snapshot
from rollout.metrics.prometheus import BackendError, Credentials, PrometheusClient, PrometheusSettings, redact
from rollout.metrics.scrape import check_cadence

RECORD_KEYS = OUTPUT_KEYS
"""The experiment record: the resource outputs people read (`describe` takes this)."""

RESTART_FIELDS = ("name", "versions")
"""Changing these starts a new experiment (replace) rather than continuing this one."""


def plain(value: Any) -> Any:
    """Engine numbers arrive as floats: 10.0 -> 10, recursively, so hashes are stable."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def inputs_hash(experiment: Mapping[str, Any], prometheus: Mapping[str, Any]) -> str:
    canonical = json.dumps({"experiment": plain(experiment), "prometheus": plain(prometheus)},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prometheus_settings(raw: Mapping[str, Any]) -> PrometheusSettings:
    return PrometheusSettings(
        url=str(raw.get("url", "")),
        timeout_seconds=float(raw.get("timeoutSeconds", 5)),
        verify_tls=bool(raw.get("verifyTls", True)),
        ca_bundle=raw.get("caBundle") or None,
    )


class PreflightError(RuntimeError):
    """Prometheus did not answer the preflight request on create, or the cadence check (create, or an update
    that edits intervalSeconds) refuses: the `up` fails before anything starts or changes."""


USER_ERRORS: tuple[type[Exception], ...] = (PreflightError,)
"""Reported by their message alone (see the module's docstring)."""


class _UserErrorsShort:
    """Stands in for the `traceback` module in the provider host: the message alone for USER_ERRORS."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    def format_exc(self, *args: Any, **kwargs: Any) -> str:
        error = sys.exc_info()[1]
        if isinstance(error, USER_ERRORS):
            return f"{error}\n"
        return traceback.format_exc(*args, **kwargs)


def _short_user_errors() -> None:
    """In the SDK's provider host (run as `python -m pulumi.dynamic`), report USER_ERRORS briefly.

    Idempotent, and a no-op anywhere else (the program, tests that call the provider directly).
    """
    host = sys.modules.get("__main__")
    if getattr(getattr(host, "__spec__", None), "name", "") == "pulumi.dynamic.__main__" and \
            getattr(host, "traceback", None) is traceback:
        host.traceback = _UserErrorsShort()  # type: ignore[union-attr]


def stored_state(spec: ExperimentSpec, olds: Mapping[str, Any]) -> ExperimentState:
    """The state in the old outputs, checked against the spec; StateError names the unreadable field."""
    if not isinstance(olds.get("spec"), Mapping):
        raise StateError("spec", "must be the experiment's mapping")
    state = ExperimentState.from_outputs(olds)
    if sorted(state.weights) != sorted(spec.version_names):
        raise StateError("weights", f"must name the versions {', '.join(spec.version_names)}, "
                                    f"got {', '.join(state.weights) or 'none'}")
    for key, name in (("winner", state.winner), ("promoted", state.promoted)):
        if name is not None and name not in spec.version_names:
            raise StateError(key, f"must be one of the versions or null, got {name!r}")
    return state


def _check_prometheus(raw: Any) -> list[CheckFailure]:
    if not isinstance(raw, Mapping):
        return [CheckFailure("prometheus", "must be a mapping with url")]
    failures = []
    problem = url_problem(raw.get("url"), "prometheusAuth")
    if problem:
        failures.append(CheckFailure("prometheus.url", problem))
    timeout = raw.get("timeoutSeconds", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        failures.append(CheckFailure("prometheus.timeoutSeconds", f"must be between 0 and 300, got {timeout!r}"))
    return failures


def credentials_of(raw: Any) -> Credentials | None:
    if not isinstance(raw, Mapping):
        return None
    token, user = raw.get("token") or None, raw.get("username") or None
    if not token and not user:
        return None
    return Credentials(token=token, username=user, password=raw.get("password") or None)


def record_outputs(spec_inputs: Mapping[str, Any], prometheus: Mapping[str, Any], spec: ExperimentSpec,
                   state: ExperimentState) -> dict[str, Any]:
    return ExperimentRecord(spec, state, plain(spec_inputs), redact(str(prometheus.get("url", ""))),
                            inputs_hash(spec_inputs, prometheus)).to_outputs()


def has_unknowns(value: Any) -> bool:
    if isinstance(value, str) and value == rpc.UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknowns(v) for v in value)
    return False


class ExperimentProvider(ResourceProvider):
    """Advances the experiment; all state lives in the resource outputs."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(p.field, p.message) for p in validate(news.get("experiment"), "experiment")]
        failures += _check_prometheus(news.get("prometheus"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        experiment, prometheus = news.get("experiment") or {}, news.get("prometheus") or {}
        if has_unknowns(experiment) or has_unknowns(prometheus):
            return DiffResult(changes=True)
        old_spec = olds.get("spec")
        if isinstance(old_spec, Mapping) and isinstance(experiment, Mapping):
            restart = [f for f in RESTART_FIELDS if plain(old_spec.get(f)) != plain(experiment.get(f))]
            if restart:
                return DiffResult(changes=True, replaces=["experiment"], delete_before_replace=False)
        if olds.get("inputsHash") != inputs_hash(experiment, prometheus):
            return DiffResult(changes=True)
        control = Control.from_input(news.get("control"))
        if control is not None and control != Control.from_input(olds.get("appliedControl")):
            return DiffResult(changes=True)  # a control takes effect now, inside the interval too
        try:
            spec = parse_experiment(experiment)
            state = stored_state(spec, olds)
        except ValueError:  # the spec or the stored state is unreadable: `update` reports it
            return DiffResult(changes=True)
        return DiffResult(changes=is_due(spec, state, time.time()))

    def create(self, props: dict[str, Any]) -> CreateResult:
        _short_user_errors()
        spec = parse_experiment(props["experiment"])
        settings = prometheus_settings(props["prometheus"])
        with PrometheusClient(settings, credentials_of(props.get("prometheusAuth"))) as client:
            try:
                version = client.preflight()
                cadence = check_cadence(spec, client, time.time())  # intervalSeconds against the scrape interval
            except BackendError as err:
                raise PreflightError(f"prometheusUrl {settings.shown_url}: {err}; the experiment was not "
                                     "started and no traffic was shifted") from None
        if cadence.refusal:
            raise PreflightError(f"{cadence.refusal}; the experiment was not started and no traffic was shifted")
        now = time.time()
        state = start(spec, now)
        state = state.evolve(messages=(*state.messages, f"Prometheus {version} answered at {settings.shown_url}",
                                       cadence.note))
        state = seen_at_start(spec, state, Control.from_input(props.get("control")), now)
        outs = record_outputs(props["experiment"], props["prometheus"], spec, state)
        return CreateResult(id_=spec.name, outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _short_user_errors()
        spec = parse_experiment(news["experiment"])
        now = time.time()
        try:
            state = stored_state(spec, olds)
        except StateError as err:
            state = abandon(spec, f"stored experiment state: {err}", now)
        settings, auth = prometheus_settings(news["prometheus"]), credentials_of(news.get("prometheusAuth"))
        if not state.finished and _cadence_edited(olds.get("spec"), spec):
            try:
                with PrometheusClient(settings, auth) as client:
                    refusal = check_cadence(spec, client, now).refusal
            except BackendError:
                refusal = None  # unreachable: this look records that, as any look does
            if refusal:
                raise PreflightError(f"{refusal}; nothing changed: the experiment goes on as before, at "
                                     f"iteration {state.iteration}")

        def snapshot_at(current: ExperimentState) -> Snapshot:
            with PrometheusClient(settings, auth) as client:
                return collect_snapshot(spec, client, current.started_at, now)

        state = advance(spec, state, Control.from_input(news.get("control")), now, snapshot_at)
        outs = record_outputs(news["experiment"], news["prometheus"], spec, state)
        return UpdateResult(outs=outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


def _cadence_edited(old: Any, spec: ExperimentSpec) -> bool:
    """Whether intervalSeconds or allowShortInterval differ from the spec the experiment last ran with (the
    cadence check that create runs is run again then: an edit can shorten the looks under the scrapes)."""
    try:
        before = parse_experiment(old)
    except (ValueError, TypeError):
        return False
    return (before.interval_seconds, before.allow_short_interval) != (spec.interval_seconds, spec.allow_short_interval)


class Experiment(pulumi.dynamic.Resource, module="rollout", name="Experiment"):
    """An Iter8-style experiment whose weights and winner are this resource's outputs."""

    stage: pulumi.Output[str]
    iteration: pulumi.Output[int]
    weights: pulumi.Output[dict[str, int]]
    winner: pulumi.Output[str | None]
    promoted: pulumi.Output[str | None]

    def __init__(self, name: str, *, experiment: pulumi.Input[Mapping[str, Any]],
                 prometheus: pulumi.Input[Mapping[str, Any]],
                 prometheus_auth: pulumi.Input[Mapping[str, Any]] | None = None,
                 control: pulumi.Input[Mapping[str, Any]] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "experiment": experiment,
            "prometheus": prometheus,
            "prometheusAuth": pulumi.Output.secret(prometheus_auth) if prometheus_auth is not None else None,
            "control": control,
        }
        for key in (*RECORD_KEYS, "inputsHash", PRIVATE_OUTPUT):
            props[key] = None
        super().__init__(ExperimentProvider(), name, props, opts)
