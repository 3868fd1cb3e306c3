"""A grouped mail is one thread: the acknowledgements and resolves of the instances it listed reply in it.

Five instances of a per-key budget crossing together are one mail ("5 instances of budget per-project
firing"), one Slack message and one PagerDuty incident. The on-call then acknowledges one instance
(`llmcost alerts ack ID`, `POST /v1/alerts/{id}/ack`), one instance is reset (`POST
/v1/budgets/{name}/reset` with its `key`), and the rest resolve together at the period's end. Slack tells
all of it in the grouped message's thread; mail must do the same.

Defect: each instance's acknowledgement and resolve mail replied (`In-Reply-To`, `References`, subject
`Re: LLMBudget (budget=per-project, key=p0, …)`) to a first mail about that one instance that was never
sent, and the grouped resolve was a new mail with no `In-Reply-To` at all: one mail thread per instance,
plus one more for the resolve, beside the grouped mail's, for one problem.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings, instances


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def test_acknowledgements_and_resolves_of_grouped_instances_reply_in_the_grouped_mail_thread(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    grouped_warnings(h, rx, clock)
    [grouped] = [m.message for m in rx.smtp.messages]
    assert grouped["Subject"] == "[llmcost] 5 instances of budget per-project firing (LLMBudget, warning)"
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    first, reset, *rest = FIRST_KEYS

    response = h.admin("POST", f"/v1/alerts/{ids[first]}/ack", json={"by": "bob"})
    assert response.status_code == 200, response.text
    h.gateway.deliver_pending()
    h.gateway.resolve("LLMBudgetWarning", {**LABELS, "key": reset}, by="carol", comment="budget reset")
    h.gateway.deliver_pending()
    clock.advance(3600)
    h.gateway.resolve_many([("LLMBudgetWarning", {**LABELS, "key": k}) for k in [first, *rest]])  # period end
    h.gateway.deliver_pending()

    acked, reset_mail, *resolved = rx.smtp.messages[1:]
    assert len(resolved) == 1, "the instances resolving together are one mail"
    for reply in (acked.message, reset_mail.message, resolved[0].message):
        assert reply["In-Reply-To"] == reply["References"] == grouped["Message-ID"], reply["Subject"]
        assert reply["Subject"] == f"Re: {grouped['Subject']}", "a changed subject splits the thread"
    assert "Acknowledged by bob via api" in acked.part("text/plain")
    assert f"key: {reset}" in reset_mail.part("text/plain")
    assert "4 instances of budget per-project resolved" in resolved[0].part("text/plain")

    # The next problem of the budget is a thread of its own: a new grouped mail, replying to nothing.
    clock.advance(60)
    h.gateway.fire_many(instances("LLMBudgetWarning", FIRST_KEYS))
    h.gateway.deliver_pending()
    fresh = rx.smtp.messages[-1].message
    assert fresh["In-Reply-To"] is None and fresh["Subject"] == grouped["Subject"]
