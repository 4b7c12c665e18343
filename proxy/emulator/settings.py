"""How the emulated PandaDoc behaves, changeable while it runs.

The settings object is deliberately mutable and shared by reference with the
state: a test (or a user driving a separate emulator process through
``PATCH /_emulator/settings``) flips a knob such as ``token_endpoint_delay_s``
and the very next request sees it, without restarting anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class EmulatorSettings:
    """Knobs of the emulated authorization server and API.

    The defaults copy PandaDoc's observable behaviour; every knob exists because
    a client of the real service has to survive the corresponding situation.
    """

    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"
    access_token_lifetime_s: float = 31_536_000  # PandaDoc's tokens last about a year
    rotate_refresh_tokens: bool = True  # each refresh returns a new refresh token
    single_use_refresh_tokens: bool = True  # a used refresh token then answers invalid_grant
    invalidate_old_access_tokens: bool = True  # a new pair makes the previous access token 401
    auto_approve: bool = False  # GET /oauth2/authorize redirects at once, no button
    token_endpoint_delay_s: float = 0.0  # the token endpoint sleeps this long before answering
    api_key: str | None = None  # when set, "Authorization: API-Key <key>" is accepted too
    # PandaDoc documents its authentication_error body with 403 as well as 401: 403 here makes
    # a rejected token answer 403 with that same body.
    rejected_token_status: int = 401


class SettingsError(ValueError):
    """A settings change names an unknown field or gives a value of the wrong type."""


_FIELD_TYPES: dict[str, str] = {
    "client_id": "str",
    "client_secret": "str",
    "access_token_lifetime_s": "seconds",
    "rotate_refresh_tokens": "bool",
    "single_use_refresh_tokens": "bool",
    "invalidate_old_access_tokens": "bool",
    "auto_approve": "bool",
    "token_endpoint_delay_s": "seconds",
    "api_key": "optional str",
    "rejected_token_status": "401 or 403",
}
# Keep the table honest: a field added to the dataclass must be typed here too.
assert set(_FIELD_TYPES) == {f.name for f in dataclasses.fields(EmulatorSettings)}


def _checked(name: str, value: object) -> object:
    """Return ``value`` converted for field ``name``, or raise SettingsError.

    JSON has no distinction between int and float, and ``True`` is an ``int`` in
    Python, so the checks are spelled out rather than left to ``isinstance``.
    """
    kind = _FIELD_TYPES[name]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{name} must be true or false")
    if kind == "seconds":
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
        raise SettingsError(f"{name} must be a non-negative number of seconds")
    if kind == "401 or 403":
        if value in (401, 403) and not isinstance(value, bool):
            return value
        raise SettingsError(f"{name} must be 401 or 403")
    if kind == "str":
        if isinstance(value, str) and value:
            return value
        raise SettingsError(f"{name} must be a non-empty string")
    if value is None or (isinstance(value, str) and value):
        return value
    raise SettingsError(f"{name} must be a non-empty string or null")


def apply_settings_changes(settings: EmulatorSettings, changes: Mapping[str, object]) -> None:
    """Validate every change first, then apply them all (all or nothing).

    Applying half a patch and then failing would leave a running emulator in a
    state nobody asked for, which is worse than rejecting the whole request.
    """
    unknown = sorted(set(changes) - set(_FIELD_TYPES))
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    checked = {name: _checked(name, value) for name, value in changes.items()}
    for name, value in checked.items():
        setattr(settings, name, value)


def settings_as_dict(settings: EmulatorSettings) -> dict[str, object]:
    """The settings as a JSON-able dict (the emulator holds no real secrets)."""
    return dataclasses.asdict(settings)
