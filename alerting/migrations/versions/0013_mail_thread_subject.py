"""Mail threads begun before budget levels were one alert keep the subject their first mail had.

Revision ID: 0013_mail_thread_subject
Revises: 0012_budget_forecast_in_family
Create Date: 2026-12-07

Until the budget levels (and the forecast) became one alert, each level was an alert of its own and its
mails' subject was `[SEVERITY] <level name> (<labels>)`. Today's subject of that family is
`LLMBudget (<labels>)`, so after an upgrade the acknowledgement or resolve of a thread the older release
began (`Re: LLMBudget (…)` under `[CRITICAL] LLMBudgetExceeded (…)`) left its thread in Gmail, which
splits threads whose subject changes. The mail notifier replies under a thread's stored `subject` when its
reference has one (`alerting.notify.mail`); this revision stores, for every mail thread begun under a
level's own fingerprint (its root Message-ID is `<fingerprint.start@domain>`, the fingerprint of the
level's name and labels: the alert 0011 or 0012 re-keyed, or one they resolved as superseded), the subject
the older release gave its first mail. Written out rather than imported, as 0011 and 0012 are: the
template has changed since.
"""

import hashlib
import json
import re
from typing import Any

from alembic import op
from sqlalchemy import text

revision = "0013_mail_thread_subject"
down_revision = "0012_budget_forecast_in_family"
branch_labels = None
depends_on = None

LEVELS = (
    "LLMBudgetInfo",
    "LLMBudgetForecastOverrun",
    "LLMBudgetWarning",
    "LLMBudgetCritical",
    "LLMBudgetExceeded",
)
_ROOT = re.compile(r"<([0-9a-f]{16})\.\d+@[^>]+>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
SUBJECT_LIMIT = 250


def level_fingerprint(alertname: str, labels: dict[str, Any]) -> str:
    """`alerting.model.fingerprint` without the family mapping: a level's own, as the older release had it."""
    identity = sorted({**labels, "alertname": alertname}.items())
    canonical = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def level_subject(alertname: str, severity: str, labels: dict[str, Any]) -> str:
    """The subject the older release's `email.subject` template gave a level's first mail (header-safe)."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    subject = f"[{severity.upper()}] {alertname}" + (f" ({shown})" if shown else "")
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", subject)).strip()
    return flat if len(flat) <= SUBJECT_LIMIT else flat[: SUBJECT_LIMIT - 1].rstrip() + "…"


def upgrade() -> None:
    conn = op.get_bind()
    names = ", ".join(f"'{name}'" for name in LEVELS)
    rows = conn.execute(
        text(
            "SELECT c.alert_id, c.reference, a.alertname, a.severity, a.labels "
            "FROM alert_channels c JOIN alerts a ON a.id = c.alert_id "
            f"WHERE c.channel = 'email' AND c.reference IS NOT NULL AND a.alertname IN ({names})"
        )
    ).all()
    for row in rows:
        reference = json.loads(row.reference)
        if not isinstance(reference, dict) or "subject" in reference or "digest" in reference:
            continue
        labels = json.loads(row.labels)
        root = _ROOT.fullmatch(str(reference.get("message_id", "")))
        if root is None or root.group(1) != level_fingerprint(row.alertname, labels):
            continue  # begun under the family's fingerprint: today's subject is the one it was sent with
        reference["subject"] = level_subject(row.alertname, row.severity, labels)
        conn.execute(
            text("UPDATE alert_channels SET reference = :reference WHERE alert_id = :id AND channel = 'email'"),
            {"reference": json.dumps(reference, separators=(",", ":")), "id": row.alert_id},
        )


def downgrade() -> None:
    pass
