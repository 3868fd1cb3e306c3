"""The fan-out stage's receivers: one notifier per configured channel."""

from __future__ import annotations

from collections.abc import Mapping

from alerting.gateway.config import GatewaySettings
from alerting.notify import Notifier, build_notifiers


def build_channels(settings: GatewaySettings, overrides: Mapping[str, Notifier] | None = None) -> dict[str, Notifier]:
    """Notifiers for the channels configured in `notifications:`; `overrides` replaces some (benchmarks)."""
    notifiers = build_notifiers(settings.channels)
    notifiers.update(overrides or {})
    return {
        name: notifiers[name] for name in sorted(notifiers) if name in settings.channels or name in (overrides or {})
    }
