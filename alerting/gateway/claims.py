"""What the outbox hands its senders (`Claimed`: a reserved row, or a digest of several) and what it recorded."""

from __future__ import annotations

from dataclasses import dataclass

from alerting.model import Notification, NotificationKind
from alerting.notify.digest import Digest


@dataclass(frozen=True)
class Claimed:
    """An outbox row reserved for delivery by this process."""

    id: int
    alert_id: int
    channel: str
    kind: NotificationKind
    attempts: int
    notification: Notification
    group_key: str | None = None
    members: tuple[Claimed, ...] = ()
    """For one message about several rows (a digest): every row it stands for, itself included."""
    digest_key: str = ""
    group: str = ""
    """The digest's group (`family|budget`), or "" for a rate-limit summary."""

    @property
    def rows(self) -> tuple[Claimed, ...]:
        """The outbox rows this delivery settles."""
        return self.members or (self,)

    def digest(self) -> Digest:
        """The message for a digest delivery."""
        return Digest(
            key=self.digest_key,
            notifications=tuple(m.notification for m in self.members),
            group=self.group,
            lead_id=self.id,
        )


@dataclass(frozen=True)
class Finished:
    """What became of one delivery attempt."""

    id: int
    channel: str
    status: str
    outcome: str | None
    """`sent`, `failed` or `retried` (the counter that was incremented), or None for a skip."""
    next_attempt_at: float | None = None
    lease_lost: bool = False
