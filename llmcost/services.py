"""Opening the exporter's `Services` the way the application runs them: with budget spend kept.

Every command that opens a store goes through `open_services`, so budget spend is kept inside every
ingest transaction, whichever command writes (`serve`, `ingest`, `reprice`, …). Kept apart from
`llmcost.wiring` so a command that only ingests does not load the rest of the alerting side.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from exporter.config import Config
from exporter.services import Services


def open_services(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    start_writer: bool = True,
    read_only: bool = False,
    must_exist: bool = False,
) -> Services:
    """`Services.build` with the application's tables (alerting's migrations) and write hooks (budget spend)."""
    from alerting.budgets.spend import BudgetSpendHook
    from alerting.store import PRODUCT_MIGRATIONS

    return Services.build(
        config,
        clock=clock,
        start_writer=start_writer,
        read_only=read_only,
        must_exist=must_exist,
        write_hooks=[BudgetSpendHook()],
        migrations=PRODUCT_MIGRATIONS,
    )
