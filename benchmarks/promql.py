"""Prometheus as the benchmark's data path: scraped series, and the metric library's queries evaluated on them.

The decision benchmark's worlds write counters (requests, errors, latency `_sum`, histogram `_bucket`s,
feedback counts and rewards) as a Prometheus server stores them: one sample per scrape, at the scrape
times, integer milliseconds; a missed scrape leaves a gap, a restart makes the counter start again
from 0. A look queries them as the provider does (`rollout.metrics.collect.collect_snapshot` through
`EmulatedPrometheus.query`), so what a decision sees went through `increase()`'s extrapolation, its
reset handling and its two-sample rule, as in production.

What is emulated follows Prometheus v2.42.0 (the version Debian ships, which the tests run beside):
- `extrapolated_rate` is promql/functions.go `extrapolatedRate` for float samples: the raw difference
  plus every value before a drop (a counter reset), extrapolated to the range's edges when the first or
  last sample is within 1.1 average sample intervals of them (else by half an interval), the start
  never extrapolated below a counter's zero, and no result under two samples. Same operations in the
  same order on IEEE doubles, so results agree to the last bit (tests/test_promql_emulation.py).
- The range `[t - range, t]` is closed at both ends, as promql/engine.go `matrixIterSlice` selects in
  v2.42 (v3 made it left-open).
- `histogram_quantile` is promql/quantile.go `bucketQuantile`: buckets sorted, equal bounds coalesced,
  counts made monotonic, the rank's bucket interpolated linearly, the second-highest bound when the rank
  falls in +Inf; NaN without observations.
- Aggregation `sum` and `sum ... by (le)`, `or` (with `on()`), `*`, `/`, `-` between a scalar or vectors
  with the same labels, `vector(s)` and `label_replace` with an empty regex (how `collect.batched_query`
  tags each version): the grammar the metric library's queries use. Anything else is refused by name.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from rollout.metrics.prometheus import Answer, BackendError, PrometheusClient

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]
NAME = "__name__"


def extrapolated_rate(times: list[int], values: list[float], range_start: int, range_end: int,
                      range_seconds: float, is_counter: bool, is_rate: bool) -> float | None:
    """`increase` (is_rate False) or `rate` of one series' samples in the range; None under two samples.

    `times` are the samples inside [range_start, range_end] (ms), oldest first. The steps are those of
    promql/functions.go `extrapolatedRate` at v2.42.0, for float samples.
    """
    return _extrapolated(times, values, 0, len(times), range_start, range_end, range_seconds, is_counter, is_rate,
                         resets=True)


def _extrapolated(times: list[int], values: list[float], lo: int, hi: int, range_start: int, range_end: int,
                  range_seconds: float, is_counter: bool, is_rate: bool, resets: bool) -> float | None:
    """`extrapolated_rate` on times[lo:hi] without copying; `resets` False: the series never drops (the loop
    over the samples would add nothing, so it is skipped)."""
    count = hi - lo
    if count < 2:
        return None
    first, last = values[lo], values[hi - 1]
    result = last - first
    if is_counter and resets:
        previous = first
        for i in range(lo + 1, hi):
            value = values[i]
            if value < previous:
                result += previous  # a reset: the counter went on from 0
            previous = value
    to_start = (times[lo] - range_start) / 1000
    to_end = (range_end - times[hi - 1]) / 1000
    sampled = (times[hi - 1] - times[lo]) / 1000
    average = sampled / (count - 1)
    if is_counter and result > 0 and first >= 0:
        to_zero = sampled * (first / result)
        if to_zero < to_start:
            to_start = to_zero
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    factor = interval / sampled
    if is_rate:
        factor /= range_seconds
    return result * factor


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """promql/quantile.go `bucketQuantile` on (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    top = merged[0][1]
    for b in merged[1:]:
        if b[1] > top:
            top = b[1]
        elif b[1] < top:
            b[1] = top
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if index == len(merged) - 1:
        return merged[-2][0]
    if index == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[index][0], merged[index][1]
    if index > 0:
        start = merged[index - 1][0]
        count -= merged[index - 1][1]
        rank -= merged[index - 1][1]
    return start + (end - start) * (rank / count)


@dataclass
class Series:
    labels: Labels
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    drops: bool = False
    """A value ever fell below the one before (a reset)."""
    plain: Labels = frozenset()
    """The labels without `__name__` (what a function's result keeps)."""

    def window(self, start: int, end: int) -> tuple[int, int]:
        """Indices lo, hi of the samples with start <= t <= end."""
        return bisect.bisect_left(self.times, start), bisect.bisect_right(self.times, end)


class QueryError(ValueError):
    """A query outside the emulated grammar (names what is not supported)."""


class TSDB:
    """Series by their labels (including `__name__`), each appended in time order."""

    def __init__(self) -> None:
        self.series: dict[Labels, Series] = {}
        self._by_name: dict[str, list[Series]] = {}
        self._unsorted: set[str] = set()

    def append(self, labels: Mapping[str, str], at_ms: int, value: float) -> None:
        key = frozenset(labels.items())
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(key, plain=frozenset((k, v) for k, v in key if k != NAME))
            self._by_name.setdefault(labels[NAME], []).append(series)
            self._unsorted.add(labels[NAME])
        if series.times and at_ms <= series.times[-1]:
            raise ValueError(f"sample at {at_ms} ms is not after the last one of {dict(labels)}")
        if series.values and value < series.values[-1]:
            series.drops = True
        series.times.append(at_ms)
        series.values.append(value)

    def named(self, name: str) -> list[Series]:
        """The series of `name` in the order Prometheus' storage returns them (by label set), which is the
        order `sum` adds them in (no compensated summation in v2.42)."""
        found = self._by_name.get(name, [])
        if name in self._unsorted:
            found.sort(key=lambda s: sorted(s.labels))
            self._unsorted.discard(name)
        return found


# ---- a parser for the metric library's PromQL ----------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<num>\d+(?:\.\d*)?(?:e[+-]?\d+)?)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<dur>\[\d+[smh]\])'
                    r'|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|[-+*/(){},=]))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    text = text.rstrip()
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m:
            raise QueryError(f"cannot read the query at {text[at:at + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        at = m.end()
    return out


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


Node = Callable[["TSDB", int], "Vector | float"]


class _Parser:
    """Recursive descent over: or > (+ -) > (* /) > primary; the functions the library uses."""

    def __init__(self, text: str) -> None:
        self.tokens, self.at, self.text = _tokens(text), 0, text

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise QueryError(f"query ends early: {self.text!r}")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise QueryError(f"expected {expected!r}, found {token[1]!r} in {self.text!r}")
        self.at += 1
        return token

    def parse(self) -> Node:
        node = self.or_expr()
        if self.at != len(self.tokens):
            raise QueryError(f"unsupported after {self.tokens[self.at - 1][1]!r}: {self.text!r}")
        return node

    def or_expr(self) -> Node:
        left = self.add_expr()
        while self.peek() == "or":
            self.take()
            ignore_labels = False
            if self.peek() == "on":
                self.take(), self.take("("), self.take(")")
                ignore_labels = True
            right = self.add_expr()
            left = _or(left, right, ignore_labels)
        return left

    def add_expr(self) -> Node:
        left = self.mul_expr()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            left = _arith(op, left, self.mul_expr())
        return left

    def mul_expr(self) -> Node:
        left = self.primary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            left = _arith(op, left, self.primary())
        return left

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            number = float(text)
            return lambda _db, _t: number
        if text == "(":
            node = self.or_expr()
            self.take(")")
            return node
        if kind != "id":
            raise QueryError(f"unsupported {text!r} in {self.text!r}")
        if text == "sum":
            by: tuple[str, ...] | None = None
            if self.peek() == "by":
                by = self.labels_list()
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            if self.peek() == "by":
                by = self.labels_list()
            return _sum(inner, by or ())
        if text in ("increase", "rate"):
            self.take("(")
            matchers = self.selector()
            window = self.take()[1]
            if not window.startswith("["):
                raise QueryError(f"{text} needs a range, found {window!r}")
            self.take(")")
            seconds = int(window[1:-2]) * {"s": 1, "m": 60, "h": 3600}[window[-2]]
            return _range_function(matchers, seconds, is_rate=text == "rate")
        if text == "histogram_quantile":
            self.take("(")
            q = float(self.take()[1])
            self.take(",")
            inner = self.or_expr()
            self.take(")")
            return _histogram_quantile(q, inner)
        if text == "vector":
            self.take("(")
            number = float(self.take()[1])
            self.take(")")
            return lambda _db, _t: {frozenset(): number}
        if text == "label_replace":
            self.take("(")
            inner = self.or_expr()
            args = []
            for _ in range(4):
                self.take(",")
                args.append(_unquote(self.take()[1]))
            self.take(")")
            if args[2] != "" or args[3] != "":
                raise QueryError("label_replace: only an empty source label and regex are emulated")
            return _set_label(inner, args[0], args[1])
        raise QueryError(f"function or selector {text!r} is not emulated: {self.text!r}")

    def labels_list(self) -> tuple[str, ...]:
        self.take("by")
        self.take("(")
        names = []
        while self.peek() != ")":
            names.append(self.take()[1])
            if self.peek() == ",":
                self.take()
        self.take(")")
        return tuple(names)

    def selector(self) -> list[tuple[str, str, str]]:
        kind, name = self.take()
        if kind != "id":
            raise QueryError(f"expected a metric name, found {name!r}")
        matchers = [(NAME, "=", name)]
        if self.peek() == "{":
            self.take()
            while self.peek() != "}":
                label = self.take()[1]
                op = self.take()[1]
                value = _unquote(self.take()[1])
                matchers.append((label, op, value))
                if self.peek() == ",":
                    self.take()
            self.take("}")
        return matchers


_MATCHED: dict[tuple[Labels, tuple[tuple[str, str, str], ...]], bool] = {}


def _matches(labels: Labels, matchers: list[tuple[str, str, str]]) -> bool:
    key = (labels, tuple(matchers))
    known = _MATCHED.get(key)
    if known is None:
        if len(_MATCHED) > 100_000:
            _MATCHED.clear()
        known = _MATCHED[key] = _match(labels, matchers)
    return known


def _match(labels: Labels, matchers: list[tuple[str, str, str]]) -> bool:
    got = dict(labels)
    for label, op, value in matchers:
        have = got.get(label, "")
        if (op == "=" and have != value) or (op == "!=" and have == value):
            return False
        if op in ("=~", "!~") and (re.fullmatch(value, have) is not None) != (op == "=~"):
            return False
    return True


def _range_function(matchers: list[tuple[str, str, str]], seconds: int, is_rate: bool) -> Node:
    def run(db: TSDB, at: int) -> Vector:
        out: Vector = {}
        for series in db.named(matchers[0][2]):
            if _matches(series.labels, matchers[1:]):
                lo, hi = series.window(at - 1000 * seconds, at)
                value = _extrapolated(series.times, series.values, lo, hi, at - 1000 * seconds, at, float(seconds),
                                      True, is_rate, series.drops)
                if value is not None:
                    out[series.plain] = value
        return out
    return run


def _vector(value: Vector | float) -> Vector:
    if isinstance(value, float):
        raise QueryError("an aggregation or function needs a vector, not a scalar")
    return value


def _sum(inner: Node, by: tuple[str, ...]) -> Node:
    def run(db: TSDB, at: int) -> Vector:
        out: Vector = {}
        for labels, value in _vector(inner(db, at)).items():  # series order: as they came
            key = frozenset((k, v) for k, v in labels if k in by)
            out[key] = out[key] + value if key in out else value
        return out
    return run


def _histogram_quantile(q: float, inner: Node) -> Node:
    def run(db: TSDB, at: int) -> Vector:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in _vector(inner(db, at)).items():
            le = dict(labels).get("le")
            if le is None:
                continue
            groups.setdefault(frozenset((k, v) for k, v in labels if k != "le"), []).append((float(le), value))
        return {labels: bucket_quantile(q, buckets) for labels, buckets in groups.items()}
    return run


def _arith(op: str, left: Node, right: Node) -> Node:
    apply: Callable[[float, float], float] = {"+": lambda a, b: a + b, "-": lambda a, b: a - b,
                                              "*": lambda a, b: a * b, "/": _divide}[op]

    def run(db: TSDB, at: int) -> Vector | float:
        a, b = left(db, at), right(db, at)
        if isinstance(a, float) and isinstance(b, float):
            return apply(a, b)
        if isinstance(a, float):
            return {k: apply(a, v) for k, v in _vector(b).items()}
        if isinstance(b, float):
            return {k: apply(v, b) for k, v in a.items()}
        return {k: apply(v, b[k]) for k, v in a.items() if k in b}
    return run


def _divide(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _or(left: Node, right: Node, ignore_labels: bool) -> Node:
    def run(db: TSDB, at: int) -> Vector:
        a, b = _vector(left(db, at)), _vector(right(db, at))
        if ignore_labels:
            return dict(a) if a else dict(b)
        return {**b, **a}
    return run


def _set_label(inner: Node, name: str, value: str) -> Node:
    def run(db: TSDB, at: int) -> Vector:
        return {frozenset({*((k, v) for k, v in labels if k != name), (name, value)}): x
                for labels, x in _vector(inner(db, at)).items()}
    return run


_PARSED: dict[str, Node] = {}


def parse(query: str) -> Node:
    node = _PARSED.get(query)
    if node is None:
        if len(_PARSED) > 20000:
            _PARSED.clear()
        node = _PARSED[query] = _Parser(query).parse()
    return node


def _format(value: float) -> str:
    """A sample value as Prometheus' API writes it (strconv.FormatFloat(v, 'f', -1, 64); NaN, +Inf, -Inf)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def evaluate(db: TSDB, query: str, at_ms: int) -> Vector | float:
    return parse(query)(db, at_ms)


@dataclass
class EmulatedPrometheus:
    """A stand-in for `PrometheusClient`: instant queries answered from `db` in Prometheus' JSON shape.

    `fault(query, at)` may return "fail" (the query fails: BackendError, as a 503 would), "empty" (an empty
    result, as for a series Prometheus has not ingested yet), "empty:<i>" (the batched answer without
    version i's series, `collect.VERSION_LABEL`); None answers normally.
    """

    db: TSDB
    fault: Callable[[str, float], str | None] | None = None
    queries: int = 0

    def as_client(self) -> PrometheusClient:
        """This object where a `PrometheusClient` is expected (collect_snapshot calls only `query`)."""
        return cast(PrometheusClient, self)

    def query(self, promql: str, at: float) -> Answer:
        self.queries += 1
        what = self.fault(promql, at) if self.fault else None
        if what == "fail":
            raise BackendError("HTTP 503, status 'error': emulated outage", status=503)
        result = evaluate(self.db, promql, round(at * 1000))
        if what == "empty":
            result = {}
        elif what is not None and what.startswith("empty:") and not isinstance(result, float):
            dropped = ("rollout_version", what.split(":", 1)[1])
            result = {labels: value for labels, value in result.items() if dropped not in labels}
        if isinstance(result, float):
            return Answer({"status": "success", "data": {"resultType": "scalar", "result": [at, _format(result)]}})
        body: list[dict[str, Any]] = [{"metric": {k: v for k, v in labels}, "value": [at, _format(value)]}
                                      for labels, value in result.items()]
        return Answer({"status": "success", "data": {"resultType": "vector", "result": body}})


def label_text(labels: Iterable[tuple[str, str]]) -> str:
    """`{a="x",b="y"}` (OpenMetrics and PromQL), `__name__` left out; values escaped as both read them."""
    body = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                    for k, v in sorted(labels) if k != NAME)
    return "{" + body + "}"
