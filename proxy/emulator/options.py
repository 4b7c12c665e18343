"""The emulator's command-line options (``pandadoc-proxy emulator --help``)."""

from __future__ import annotations

import argparse

from .faults import Fault, FaultError, parse_fault
from .ratelimit import DETAILS, PRESETS, RateLimitSettings
from .settings import EmulatorSettings

__all__ = ["add_emulator_arguments", "settings_from_args"]


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a non-negative number of seconds")
    return seconds


def _positive_seconds(value: str) -> float:
    seconds = _seconds(value)
    if seconds == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def _attempts(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of at least 1")
    return int(value)


def _operation_limit(value: str) -> tuple[str, int]:
    operation, sep, count = value.partition("=")
    if not sep or not operation or not count.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not OPERATION=N (listDocuments=5)")
    return operation, int(count)


def _fault(value: str) -> Fault:
    try:
        return parse_fault(value)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorSettings()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (8090)")
    parser.add_argument("--client-id", default=defaults.client_id, help="the accepted client id")
    parser.add_argument(
        "--client-secret",
        default=defaults.client_secret,
        help="the accepted client secret (default: the emulator's well-known test secret)",
    )
    parser.add_argument(
        "--access-token-lifetime",
        type=_positive_seconds,
        default=defaults.access_token_lifetime_s,
        metavar="SECONDS",
        help="how long an access token lives (default: a year, like PandaDoc's)",
    )
    parser.add_argument("--api-key", default=None, help='also accept "API-Key <key>"')
    parser.add_argument("--auto-approve", action="store_true", help="skip the consent page")
    parser.add_argument(
        "--no-rotate", action="store_true", help="a refresh returns the same refresh token"
    )
    parser.add_argument(
        "--reusable-refresh-tokens", action="store_true", help="refresh tokens are not single use"
    )
    parser.add_argument(
        "--keep-old-access-tokens",
        action="store_true",
        help="a new pair does not invalidate the previous access token",
    )
    parser.add_argument(
        "--token-endpoint-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="how long the token endpoint takes to answer",
    )
    parser.add_argument(
        "--processing-delay",
        type=_seconds,
        default=defaults.document_processing_s,
        metavar="SECONDS",
        help="how long a created document stays document.uploaded (default 1)",
    )
    parser.add_argument(
        "--completion-delay",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="complete sent documents by themselves after this long (default: never)",
    )
    parser.add_argument(
        "--webhook-attempts",
        type=_attempts,
        default=defaults.webhook_attempts,
        metavar="N",
        help="deliveries of a webhook event before giving up (default 3)",
    )
    parser.add_argument(
        "--webhook-retry-delay",
        type=_seconds,
        default=defaults.webhook_retry_delay_s,
        metavar="SECONDS",
        help="wait before the first retry of a failed delivery, doubled after (default 1)",
    )
    limits = parser.add_argument_group("rate limits (off unless --rate-limits is given)")
    limits.add_argument(
        "--rate-limits",
        nargs="?",
        const="production",
        choices=PRESETS,
        default=None,
        metavar="PRESET",
        help="throttle like PandaDoc: production (its published per-operation limits, the"
        " default) or sandbox (10 per window for every operation)",
    )
    limits.add_argument(
        "--rate-limit-window",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="the sliding window the limits count over (default 60)",
    )
    limits.add_argument(
        "--rate-limit",
        type=_operation_limit,
        action="append",
        default=[],
        metavar="OPERATION=N",
        help="N requests per window for an operationId (listDocuments=5), or *=N for every"
        " other operation; repeatable",
    )
    limits.add_argument(
        "--rate-limit-retry-after",
        action="store_true",
        help="send Retry-After with the 429 (PandaDoc's spec declares none)",
    )
    limits.add_argument(
        "--rate-limit-detail",
        choices=DETAILS,
        default="plain",
        help='the 429\'s detail: "Request was throttled." (plain) or with "Expected available'
        ' in N seconds." (expected)',
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="RULE",
        help="inject a fault, e.g. 'match=POST /public/v1/documents/*/send,kind=status,"
        "value=503,times=2' (kinds: latency, status, reset, throttle); repeatable",
    )


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """The settings the command-line flags ask for (argparse has checked every value)."""
    rate_limits = RateLimitSettings(
        enabled=args.rate_limits is not None,
        preset=args.rate_limits or "production",
        window_s=args.rate_limit_window,
        limits=dict(args.rate_limit),
        retry_after=args.rate_limit_retry_after,
        detail=args.rate_limit_detail,
    )
    return EmulatorSettings(
        client_id=args.client_id,
        client_secret=args.client_secret,
        access_token_lifetime_s=args.access_token_lifetime,
        rotate_refresh_tokens=not args.no_rotate,
        single_use_refresh_tokens=not args.reusable_refresh_tokens,
        invalidate_old_access_tokens=not args.keep_old_access_tokens,
        auto_approve=args.auto_approve,
        token_endpoint_delay_s=args.token_endpoint_delay,
        api_key=args.api_key,
        document_processing_s=args.processing_delay,
        document_completion_s=args.completion_delay,
        webhook_attempts=args.webhook_attempts,
        webhook_retry_delay_s=args.webhook_retry_delay,
        rate_limits=rate_limits,
        faults=list(args.fault),
    )
