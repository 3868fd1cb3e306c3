"""The fan-out stage's receivers: one notifier per configured channel (and the optional silencer)."""

from __future__ import annotations

from collections.abc import Mapping

from alerting.gateway.settings import GatewaySettings
from alerting.gateway.silences import AlertmanagerSilencer
from alerting.notify import Notifier, build_notifiers


def build_channels(settings: GatewaySettings, overrides: Mapping[str, Notifier] | None = None) -> dict[str, Notifier]:
    """Notifiers for the channels configured in `notifications:`; `overrides` replaces some (benchmarks)."""
    notifiers: dict[str, Notifier] = dict(build_notifiers(settings.channels))
    if settings.silences.silence_on_ack:
        notifiers["alertmanager"] = AlertmanagerSilencer(
            settings.silences.urls, duration=settings.silences.duration, external_labels=settings.external_labels
        )
    notifiers.update(overrides or {})
    return dict(sorted(notifiers.items()))
