"""A lean Prometheus renderer (text format 0.0.4 and OpenMetrics 1.0.0) for llmcost's own collectors.

prometheus_client validates and escapes every label *name* of every sample on every scrape, which
costs ~10 µs a sample: 1 s at 100k series. Our collectors only yield counters and gauges with fixed,
valid label names, so this renderer skips that work and caches escaped label values (they repeat
across families). Its output is byte-for-byte what prometheus_client writes for the same families and
format (tests pin both); other formats go through prometheus_client (see `lean_renderer`).

A collector with many series can skip metric objects altogether: if it has a
`render_text(escaped, openmetrics)` method and sits in an `OrderedRegistry`, `render_registry` asks it
for its text directly (the usage collector does: building a Sample per series cost more than writing
its line).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

SUPPORTED_TYPES = frozenset(("counter", "gauge"))


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escaped(value: str, cache: dict[str, str]) -> str:
    """`value` escaped for a label, through `cache` (label values repeat across series and families)."""
    text = cache.get(value)
    if text is None:
        text = cache[value] = _escape_value(value)
    return text


@runtime_checkable
class TextCollector(Protocol):
    """A collector that can write its own exposition text (see the module docstring)."""

    def render_text(self, escaped: dict[str, str], openmetrics: bool = False) -> str:
        """Its families as exposition lines; `escaped` caches escaped label values across collectors."""


class OrderedRegistry(CollectorRegistry):
    """A CollectorRegistry that also lists its collectors, in registration order, for `render_registry`."""

    def __init__(self, auto_describe: bool = False) -> None:
        super().__init__(auto_describe=auto_describe)
        self._in_order: list[Collector] = []
        self._order_lock = threading.Lock()
        self._gate: Callable[[], bool] | None = None
        self._otherwise: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Register as CollectorRegistry does, and remember the order."""
        super().register(collector)
        with self._order_lock:
            self._in_order.append(collector)

    def unregister(self, collector: Collector) -> None:
        """Unregister as CollectorRegistry does."""
        super().unregister(collector)
        with self._order_lock:
            self._in_order.remove(collector)

    def expose_only_while(self, gate: Callable[[], bool], otherwise: Collector) -> None:
        """Expose the registered collectors while `gate()` is true, and only `otherwise` when it is not.

        With several processes on one store, every process reads the same totals: `metrics.store_series:
        leader` makes only the scheduler's leader expose them, so summing over scraped replicas counts
        each call once (docs/deployment.md).
        """
        self._gate = gate
        self._otherwise = [otherwise]

    def collectors(self) -> list[Collector]:
        """The collectors this scrape visits, in order: the registered ones, unless the gate is closed."""
        if self._gate is not None and not self._gate():
            return list(self._otherwise)
        return self.registered()

    def registered(self) -> list[Collector]:
        """Every registered collector, in registration order, whatever the gate says."""
        with self._order_lock:
            return list(self._in_order)

    def collect(self) -> Iterable[Metric]:
        """The families of `collectors()` (prometheus_client's encoders for other formats read this)."""
        for collector in self.collectors():
            yield from collector.collect()


def family_header(family_name: str, documentation: str, kind: str, *, openmetrics: bool = False) -> str:
    """The `# HELP` and `# TYPE` lines of a family named as client_python names it (counters without _total).

    The text format (0.0.4) names a counter family by its samples' name and escapes backslashes and
    newlines in the help; OpenMetrics uses the family name and escapes double quotes too.
    """
    help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        help_text = help_text.replace('"', r"\"")
        name = family_name
    else:
        name = family_name + "_total" if kind == "counter" else family_name
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class LabelWriter:
    """Writes `{a="…",b="…"}` for values given in a fixed label-name order, sorted as prometheus_client sorts."""

    def __init__(self, names: Sequence[str], escaped: dict[str, str]) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        # A str.format template with the names in sorted order and a positional field per value.
        self._template = "{{" + ",".join(f'{names[i]}="{{{i}}}"' for i in order) + "}}"
        self._escaped = escaped

    def escape(self, values: Iterable[str]) -> list[str]:
        """The values escaped for the exposition (cached: label values repeat across series)."""
        cache = self._escaped
        return [_escaped(value, cache) for value in values]

    def __call__(self, values: Sequence[str]) -> str:
        """The label set of one sample."""
        return self._template.format(*self.escape(values))

    def with_escaped(self, escaped_values: Sequence[str]) -> str:
        """The label set of one sample whose values `escape` already gave."""
        return self._template.format(*escaped_values)


def format_value(value: float) -> str:
    """A sample value as prometheus_client writes it (`floatToGoString`), with a shortcut for counts."""
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"  # what repr(float(value)) gives below a million (Go switches to exponents above)
    return floatToGoString(value)


def render_families(families: Iterable[Metric], *, openmetrics: bool = False) -> bytes:
    """Exposition of counter and gauge families (anything else raises ValueError), text or OpenMetrics."""
    return (_render(families, {}, openmetrics) + (OPENMETRICS_END if openmetrics else "")).encode()


OPENMETRICS_END = "# EOF\n"


def _render(families: Iterable[Metric], escaped: dict[str, str], openmetrics: bool) -> str:
    out: list[str] = []
    append = out.append
    for family in families:
        kind = family.type
        if kind not in SUPPORTED_TYPES or family.unit:
            raise ValueError(f"{family.name}: the lean renderer handles counters and gauges without units")
        append(family_header(family.name, family.documentation, kind, openmetrics=openmetrics))
        label_names: tuple[str, ...] | None = None
        for sample in family.samples:
            labels = sample.labels
            if not labels:
                append(f"{sample.name} {floatToGoString(sample.value)}\n")
                continue
            if label_names is None or len(label_names) != len(labels):
                label_names = tuple(sorted(labels))
            parts = [f'{key}="{_escaped(labels[key], escaped)}"' for key in label_names]
            append(f"{sample.name}{{{','.join(parts)}}} {floatToGoString(sample.value)}\n")
    return "".join(out)


def prepare_registry(registry: Collector) -> None:
    """Let each collector with a `prepare()` method do the first scrape's extra work before serving.

    A store that cannot be read yet only leaves that work to a scrape.
    """
    if not isinstance(registry, OrderedRegistry):
        return
    for collector in registry.registered():  # a follower may lead later: it is ready then
        prepare = getattr(collector, "prepare", None)
        if prepare is None:
            continue
        try:
            prepare()
        except Exception as exc:  # the store is down or not migrated yet: the first scrape ranks
            log.warning("could not prepare %s before serving: %s", type(collector).__name__, exc)


def render_registry(registry: Collector, *, openmetrics: bool = False) -> bytes:
    """Exposition (text 0.0.4, or OpenMetrics 1.0.0) of a whole registry of llmcost collectors."""
    if not isinstance(registry, OrderedRegistry):
        return render_families(registry.collect(), openmetrics=openmetrics)
    escaped: dict[str, str] = {}
    parts = []
    for collector in registry.collectors():
        if isinstance(collector, TextCollector):
            parts.append(collector.render_text(escaped, openmetrics))
        else:
            parts.append(_render(collector.collect(), escaped, openmetrics))
    if openmetrics:
        parts.append(OPENMETRICS_END)
    return "".join(parts).encode()


def lean_renderer(content_type: str) -> Callable[[Collector], bytes] | None:
    """The lean renderer for a content type that `prometheus_client.exposition.choose_encoder` picked.

    Plain text 0.0.4 (curl, most tools) and OpenMetrics 1.0.0 (what Prometheus asks for first): our
    metric and label names are valid legacy names, so no name escaping scheme changes them. Anything
    else (other versions) is left to prometheus_client: None.
    """
    if content_type.startswith("text/plain; version=0.0.4"):
        return render_registry
    if content_type.startswith("application/openmetrics-text; version=1.0.0"):
        return functools.partial(render_registry, openmetrics=True)
    return None
