"""The alert gateway: dedup, lifecycle, durable outbox and fan-out to Slack, email and PagerDuty.

Importing it registers the validators of the `notifications:` and `alerting:` config sections.
"""

from alerting.gateway import config as _config  # noqa: F401  (registers the section validators)
from alerting.gateway.changes import AlertConflict, AlertInput, AlertNotFound, Change
from alerting.gateway.receiver import WebhookResult
from alerting.gateway.service import GatewayService, TickResult

__all__ = [
    "AlertConflict",
    "AlertInput",
    "AlertNotFound",
    "Change",
    "GatewayService",
    "TickResult",
    "WebhookResult",
]
