"""Provider events (delivered, bounced, complained, ...) normalized to one stored shape.

``(provider, event_key)`` is unique so a redelivered webhook is recorded once; ``raw`` keeps the
provider's own payload for whoever needs a detail the normalized fields do not carry.

``replay_token`` holds a provider's one-time signature nonce where the signature does not cover
the body (Mailgun signs only ``timestamp + token``): unique per provider, it makes a captured
signature useless for a second, different payload. ``message_id`` is our RFC 5322 Message-ID
(angle brackets included) when the event or the matched delivery row tells it;
``provider_message_id`` is the provider's own id of the message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (
        sa.UniqueConstraint("provider", "event_key"),
        sa.UniqueConstraint("provider", "replay_token"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    event_key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    event_type: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    bounce: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(250), index=True))
    provider_message_id: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(250), index=True)
    )
    delivery_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("delivery.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    replay_token: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    occurred_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    received_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    description: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    raw: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
