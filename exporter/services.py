"""Wiring: builds the store, pipeline, commit queue and metrics registry from a `Config`.

Everything the HTTP layer and the commands use comes in through this one object (no module-level engines
or registries), so tests build as many independent instances as they like. Work that code outside the
exporter adds to every ingest transaction comes in as `write_hooks` (the store's `WriteHook` protocol).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.collector import AdjustmentCollector, SelfCollector, StoreUpCollector, UsageCollector
from exporter.commit_queue import CommitQueue
from exporter.config import Config
from exporter.exposition import OrderedRegistry
from exporter.pipeline import IngestPipeline
from exporter.pricing import PriceBook
from exporter.store import SchemaPart, Store
from exporter.store.writer import WriteHook


@dataclass
class Services:
    """The running parts of one llmcost process."""

    config: Config
    store: Store
    prices: PriceBook
    pipeline: IngestPipeline
    registry: CollectorRegistry
    clock: Callable[[], float] = time.time
    commit_queue: CommitQueue | None = None
    # Closers run in reverse order on shutdown (scheduler, gateway workers, …).
    closers: list[Callable[[], Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        start_writer: bool = True,
        read_only: bool = False,
        must_exist: bool = False,
        write_hooks: Sequence[WriteHook] = (),
        migrations: Sequence[SchemaPart] = (),
    ) -> Services:
        """Open the store (migrating it unless `read_only`) and register the collectors.

        `read_only`/`must_exist`: see `Store`; a read-only build starts no writer. `write_hooks` run inside
        every ingest transaction, whichever command writes (the application's budget spend). `migrations`:
        the schema parts of other packages kept in the same store (see `Store`).
        """
        store = Store(
            config.database_url, clock=clock, read_only=read_only, must_exist=must_exist, migrations=migrations
        )
        start_writer = start_writer and not read_only
        for hook in write_hooks:
            store.add_write_hook(hook)
        prices = PriceBook.from_file(config.price_overrides_file)
        events_days = config.retention.events_days
        pipeline = IngestPipeline(
            store,
            prices,
            clock=clock,
            max_future_skew=config.ingest.max_future_skew_seconds,
            max_event_age=None if events_days is None else events_days * 86_400,
            max_metadata_bytes=config.ingest.max_metadata_bytes,
            max_batch_events=config.ingest.max_batch_events,
            max_json_values=config.ingest.max_json_values,
            otlp=config.otlp,
        )
        registry = OrderedRegistry(auto_describe=False)
        usage = UsageCollector(
            store,
            extra_labels=config.metrics.extra_labels,
            max_series_per_label=config.metrics.max_series_per_label,
            rank_refresh_seconds=config.metrics.rank_refresh_seconds,
        )
        registry.register(usage)
        registry.register(AdjustmentCollector(store, usage))
        registry.register(SelfCollector(store))
        registry.register(StoreUpCollector(up=True))
        services = cls(config, store, prices, pipeline, registry, clock)
        if start_writer:
            services.commit_queue = CommitQueue(store)
        return services

    def close(self) -> None:
        """Stop background work and release the database."""
        for closer in reversed(self.closers):
            closer()
        if self.commit_queue is not None:
            self.commit_queue.close()
        self.store.close()
