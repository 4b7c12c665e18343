"""How the emulated PandaDoc behaves, changeable while it runs.

The settings object is deliberately mutable and shared by reference with the
state: a test (or a user driving a separate emulator process through
``PATCH /_emulator/settings``) flips a knob such as ``token_endpoint_delay_s``
and the very next request sees it, without restarting anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, FaultError
from .ratelimit import DETAILS, PRESETS, RateLimitSettings

__all__ = [
    "EmulatorSettings",
    "SettingsError",
    "apply_settings_changes",
    "changed_rate_limits",
    "settings_as_dict",
]


@dataclass
class EmulatorSettings:
    """Knobs of the emulated authorization server and API.

    The defaults copy PandaDoc's observable behaviour; every knob exists because
    a client of the real service has to survive the corresponding situation.
    """

    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"
    access_token_lifetime_s: float = 31_536_000  # PandaDoc's tokens last about a year
    # When set, the token endpoint says this ``expires_in`` instead of the real lifetime: any
    # number, 0, negative, NaN and infinity included, to test a client against a PandaDoc
    # that answers nonsense (the tokens still live access_token_lifetime_s).
    expires_in_override: float | None = None
    rotate_refresh_tokens: bool = True  # each refresh returns a new refresh token
    single_use_refresh_tokens: bool = True  # a used refresh token then answers invalid_grant
    invalidate_old_access_tokens: bool = True  # a new pair makes the previous access token 401
    auto_approve: bool = False  # GET /oauth2/authorize redirects at once, no button
    token_endpoint_delay_s: float = 0.0  # the token endpoint sleeps this long before answering
    api_key: str | None = None  # when set, "Authorization: API-Key <key>" is accepted too
    # PandaDoc documents its authentication_error body with 403 as well as 401: 403 here makes
    # a rejected token answer 403 with that same body.
    rejected_token_status: int = 401
    # A created document is "document.uploaded" this long, then "document.draft" (PandaDoc
    # processes documents asynchronously; its docs speak of 3-5 seconds).
    document_processing_s: float = 1.0
    # A sent document completes (every recipient signs) this long after sending; null: only
    # when asked (PATCH .../status, or POST /_emulator/documents/{id}/complete).
    document_completion_s: float | None = None
    webhook_attempts: int = 3  # deliveries of one webhook event before giving up
    webhook_retry_delay_s: float = 1.0  # before the first retry; doubled for each further one
    webhook_timeout_s: float = 10.0  # for the receiver's answer to one delivery
    request_record_size: int = 10_000  # requests kept in the record (GET /_emulator/requests)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    faults: list[Fault] = field(default_factory=list)


class SettingsError(ValueError):
    """A settings change names an unknown field or gives a value of the wrong type."""


def _number(value: object) -> float | None:
    """JSON's number (never a bool, which Python counts as an int), finite, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    return None


def _any_number(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise SettingsError(f"{name} must be a number or null")


def _seconds(name: str, value: object) -> float:
    seconds = _number(value)
    if seconds is None or seconds < 0:
        raise SettingsError(f"{name} must be a non-negative number of seconds")
    return seconds


def _optional_seconds(name: str, value: object) -> float | None:
    return None if value is None else _seconds(name, value)


def _positive_seconds(name: str, value: object) -> float:
    seconds = _number(value)
    if seconds is None or seconds <= 0:
        raise SettingsError(f"{name} must be a positive number of seconds")
    return seconds


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise SettingsError(f"{name} must be true or false")


def _count(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise SettingsError(f"{name} must be an integer of at least 1")


def _string(name: str, value: object) -> str:
    if isinstance(value, str) and value:
        return value
    raise SettingsError(f"{name} must be a non-empty string")


def _optional_string(name: str, value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise SettingsError(f"{name} must be a non-empty string or null")


def _rejected_status(name: str, value: object) -> int:
    if value in (401, 403) and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SettingsError(f"{name} must be 401 or 403")


def _choice(*choices: str) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise SettingsError(f"{name} must be one of {', '.join(choices)}")

    return check


def _limits(name: str, value: object) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for key, n in value.items()
    ):
        raise SettingsError(f"{name} must map operationIds (or *) to whole numbers of requests")
    return dict(value)


def _faults(name: str, value: object) -> list[Fault]:
    if not isinstance(value, list):
        raise SettingsError(f"{name} must be a list of fault rules")
    try:
        return [Fault.from_json(item) for item in value]
    except FaultError as exc:
        raise SettingsError(f"{name}: {exc}") from None


Check = Callable[[str, object], object]

_RATE_LIMIT_FIELDS: dict[str, Check] = {
    "enabled": _bool,
    "preset": _choice(*PRESETS),
    "window_s": _positive_seconds,
    "limits": _limits,
    "retry_after": _bool,
    "detail": _choice(*DETAILS),
}
assert set(_RATE_LIMIT_FIELDS) == {f.name for f in dataclasses.fields(RateLimitSettings)}


def changed_rate_limits(
    current: RateLimitSettings, changes: object, prefix: str = "rate_limits"
) -> RateLimitSettings:
    """A new rate-limit section with ``changes`` applied, or SettingsError; never in place."""
    if not isinstance(changes, Mapping):
        raise SettingsError(f"{prefix or 'the body'} must be an object")

    def named(field_name: str) -> str:
        return f"{prefix}.{field_name}" if prefix else field_name

    unknown = sorted(set(changes) - set(_RATE_LIMIT_FIELDS))
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(named(u) for u in unknown)}")
    # Any: each value has just been checked against its field's type by its own checker.
    checked: dict[str, Any] = {
        name: _RATE_LIMIT_FIELDS[name](named(name), value) for name, value in changes.items()
    }
    return dataclasses.replace(current, **checked)


_FIELDS: dict[str, Check] = {
    "client_id": _string,
    "client_secret": _string,
    "access_token_lifetime_s": _seconds,
    "expires_in_override": _any_number,
    "rotate_refresh_tokens": _bool,
    "single_use_refresh_tokens": _bool,
    "invalidate_old_access_tokens": _bool,
    "auto_approve": _bool,
    "token_endpoint_delay_s": _seconds,
    "api_key": _optional_string,
    "rejected_token_status": _rejected_status,
    "document_processing_s": _seconds,
    "document_completion_s": _optional_seconds,
    "webhook_attempts": _count,
    "webhook_retry_delay_s": _seconds,
    "webhook_timeout_s": _positive_seconds,
    "request_record_size": _count,
    "faults": _faults,
}
# Keep the table honest: a field added to the dataclass must be checked here too.
assert set(_FIELDS) | {"rate_limits"} == {f.name for f in dataclasses.fields(EmulatorSettings)}


def apply_settings_changes(settings: EmulatorSettings, changes: Mapping[str, object]) -> None:
    """Validate every change first, then apply them all (all or nothing).

    Applying half a patch and then failing would leave a running emulator in a
    state nobody asked for, which is worse than rejecting the whole request.
    ``rate_limits`` takes a partial object: the fields it names change, the rest stay.
    """
    unknown = sorted(set(changes) - set(_FIELDS) - {"rate_limits"})
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    checked: dict[str, object] = {
        name: _FIELDS[name](name, value) for name, value in changes.items() if name in _FIELDS
    }
    if "rate_limits" in changes:
        checked["rate_limits"] = changed_rate_limits(settings.rate_limits, changes["rate_limits"])
    for name, value in checked.items():
        setattr(settings, name, value)


def settings_as_dict(settings: EmulatorSettings) -> dict[str, object]:
    """The settings as a JSON-able dict (the emulator holds no real secrets)."""
    return dataclasses.asdict(settings)
