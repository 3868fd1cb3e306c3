"""Mail threads the first release began keep their subject after the upgrade, so they stay one thread.

Defect: the first release (15281b5) mailed each budget level as an alert of its own, subject
`[CRITICAL] LLMBudgetExceeded (budget=…, key=…, scope=…)`. Upgraded, the same alert (re-keyed into the
budget family) was acknowledged and resolved in mails replying to that first one but titled
`Re: LLMBudget (budget=…)`, and the superseded levels' resolves likewise: Gmail splits a thread whose
subject changes (the template says so), so on-call saw the ack and the resolve apart from the page. Found
by running the first release with a real SMTP server, then this one on its store. Now the upgrade stores
the first mail's subject with the thread, and every reply keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from exporter.store.engine import create_store_engine
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.legacy_schema import T0, build_legacy_store, legacy_alert, level_fingerprint

SEARCH = {"budget": "per-project-daily", "key": "search", "scope": "project"}
SHOWN = "(budget=per-project-daily, key=search, scope=project)"


def root(alertname: str) -> str:
    """The Message-ID of the first release's first mail about a level (`thread_root_id` then)."""
    return f"<{level_fingerprint(alertname, SEARCH)}.{int(T0)}@llmcost>"


@pytest.fixture
def upgraded(db_url: str, rx: Receivers, clock: FakeClock) -> Iterator[tuple[Harness, dict[str, int]]]:
    """The first release's store (`0004_scheduler`): `search` past its limit, warning and exceeded mailed."""
    build_legacy_store(db_url, "0004_scheduler")
    engine = create_store_engine(db_url)
    try:
        ids = {
            name: legacy_alert(
                engine, name, SEARCH, severity=severity, at=T0, channels={"email": {"message_id": root(name)}}
            )
            for name, severity in (("LLMBudgetWarning", "warning"), ("LLMBudgetExceeded", "critical"))
        }
    finally:
        engine.dispose()
    with Harness(db_url, rx, clock=clock) as h:
        clock.set(time.time() + 1)  # the upgrade ran on the wall clock: its resolves are due from then
        yield h, ids


def test_replies_in_a_thread_the_first_release_began_keep_its_subject(
    upgraded: tuple[Harness, dict[str, int]], rx: Receivers
) -> None:
    h, ids = upgraded
    h.gateway.deliver_pending()  # the superseded warning's resolve
    h.gateway.ack(ids["LLMBudgetExceeded"], by="alice")
    h.gateway.deliver_pending()
    h.gateway.resolve("LLMBudgetExceeded", SEARCH)
    h.gateway.deliver_pending()

    mails = [
        (m.message["X-LLMCost-Notification"], m.message["Subject"], m.message["In-Reply-To"]) for m in rx.smtp.messages
    ]
    assert mails == [
        ("resolved", f"Re: [WARNING] LLMBudgetWarning {SHOWN}", root("LLMBudgetWarning")),
        ("acknowledged", f"Re: [CRITICAL] LLMBudgetExceeded {SHOWN}", root("LLMBudgetExceeded")),
        ("resolved", f"Re: [CRITICAL] LLMBudgetExceeded {SHOWN}", root("LLMBudgetExceeded")),
    ]


def test_a_thread_begun_after_the_upgrade_is_titled_by_the_family(
    upgraded: tuple[Harness, dict[str, int]], rx: Receivers
) -> None:
    h, _ = upgraded
    other = {**SEARCH, "key": "chat"}
    h.gateway.fire("LLMBudgetWarning", other, severity="warning", annotations={"summary": "at 81%"})
    h.gateway.fire("LLMBudgetCritical", other, severity="critical", annotations={"summary": "at 96%"})
    h.gateway.deliver_pending()
    subjects = [m.message["Subject"] for m in rx.smtp.messages if "key=chat" in str(m.message["Subject"])]
    assert subjects == [
        "LLMBudget (budget=per-project-daily, key=chat, scope=project)",
        "Re: LLMBudget (budget=per-project-daily, key=chat, scope=project)",
    ]
