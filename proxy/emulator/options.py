"""The emulator's command-line options (``pandadoc-proxy emulator --help``)."""

from __future__ import annotations

import argparse

from .settings import EmulatorSettings

__all__ = ["add_emulator_arguments", "settings_from_args"]


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
        type=float,
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
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long the token endpoint takes to answer",
    )


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """The settings the command-line flags ask for."""
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
    )
