"""Who may use the admin pages (contract section 3).

Without ``admin.password``, only requests whose TCP peer is a loopback address: an operator on
the machine itself, or through an SSH tunnel. With it, HTTP Basic from anywhere (behind a load
balancer every peer is the balancer, so loopback means nothing there). ``X-Forwarded-For`` and
friends are never looked at: any client can write them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import AdminAuthenticationRequired, Forbidden
from ..keys import CONFIG

__all__ = ["admin_only", "is_loopback_address", "is_loopback_peer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_peer(request: web.Request) -> bool:
    """Whether the TCP peer of ``request`` is a loopback address (forwarded headers ignored)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return bool(peer) and isinstance(peer, tuple) and is_loopback_address(str(peer[0]))


def is_loopback_address(host: str) -> bool:
    """127.0.0.0/8, ::1, and IPv4-mapped loopback (``::ffff:127.0.0.1``, a dual-stack socket)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """(user, password) from ``Basic <base64(user:password)>`` (RFC 7617), or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def _credentials_match(request: web.Request, username: str, password: str) -> bool:
    given = _basic_credentials(request.headers.get("Authorization", ""))
    if given is None:
        return False
    # Both compared in constant time, and both always compared, so timing says nothing about
    # which one was wrong or how much of it was right.
    user_ok = hmac.compare_digest(given[0], username.encode())
    password_ok = hmac.compare_digest(given[1], password.encode())
    return user_ok & password_ok


def admin_only(handler: Handler) -> Handler:
    """Wrap an admin route in the access rule above."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        admin = request.app[CONFIG].admin
        if admin.password:
            if not _credentials_match(request, admin.username, admin.password):
                raise AdminAuthenticationRequired()
        elif not is_loopback_peer(request):
            raise Forbidden()
        return await handler(request)

    return guarded
