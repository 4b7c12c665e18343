"""Ids, timestamps and the one workspace and user that own everything in the emulator."""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Container
from datetime import UTC, datetime
from typing import overload

__all__ = [
    "OWNER",
    "WORKSPACE_ID",
    "WORKSPACE_NAME",
    "new_id",
    "new_uuid",
    "now",
    "seed_day",
    "timestamp",
]

_ID_ALPHABET = string.ascii_letters + string.digits

WORKSPACE_ID = "EmuWorkspace0000000001"
WORKSPACE_NAME = "PandaDoc emulator"

#: The emulated user every token acts for (documents' ``created_by``, the current member).
OWNER: dict[str, object] = {
    "id": "EmuUser0000000000000001",
    "membership_id": "EmuMembership0000000001",
    "email": "owner@emulator.invalid",
    "first_name": "Emma",
    "last_name": "Ulator",
    "avatar": None,
}


def new_id(taken: Container[str] = ()) -> str:
    """A 22-character alphanumeric id, the shape PandaDoc gives documents and templates."""
    while True:
        value = "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))
        if value not in taken:
            return value


def new_uuid() -> str:
    """A UUID, the shape PandaDoc gives webhook subscriptions and events."""
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


@overload
def timestamp(moment: datetime) -> str: ...
@overload
def timestamp(moment: None) -> None: ...
@overload
def timestamp(moment: datetime | None) -> str | None: ...
def timestamp(moment: datetime | None) -> str | None:
    """PandaDoc's timestamp format: ISO 8601, microseconds, UTC, "Z"."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seed_day(day: int, hour: int) -> datetime:
    """A fixed moment in January 2024, so seeded data looks the same in every run."""
    return datetime(2024, 1, day, hour, 0, 0, tzinfo=UTC)
