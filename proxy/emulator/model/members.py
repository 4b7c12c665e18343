"""The workspace's members (``/public/v1/members``): fixed, seeded at start-up."""

from __future__ import annotations

from .common import OWNER, WORKSPACE_ID, WORKSPACE_NAME, seed_day, timestamp

__all__ = ["MEMBERS", "member_by_id"]


def _member(
    user: dict[str, object], role: str, *, license: str = "Full", day: int = 2
) -> dict[str, object]:
    """MemberDetailsResponse."""
    return {
        "user_id": user["id"],
        "membership_id": user["membership_id"],
        "email": user["email"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "is_active": True,
        "workspace": WORKSPACE_ID,
        "workspace_name": WORKSPACE_NAME,
        "emails_verified": True,
        "role": role,
        "user_license": license,
        "date_created": timestamp(seed_day(day, 8)),
        "date_modified": timestamp(seed_day(day, 8)),
    }


#: The owner (the user every token acts for) and a second member.
MEMBERS: list[dict[str, object]] = [
    _member(OWNER, "Admin"),
    _member(
        {
            "id": "EmuUser0000000000000002",
            "membership_id": "EmuMembership0000000002",
            "email": "max@emulator.invalid",
            "first_name": "Max",
            "last_name": "Mustermann",
        },
        "Member",
        day=3,
    ),
]


def member_by_id(member_id: str) -> dict[str, object] | None:
    """A member by membership id (PandaDoc's ``{id}``) or by user id."""
    for member in MEMBERS:
        if member_id in (member["membership_id"], member["user_id"]):
            return member
    return None
