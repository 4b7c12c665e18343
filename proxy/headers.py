"""Pure functions that decide which headers cross the proxy, in each direction.

The order of operations is the security property here: first everything hop-by-hop is removed
(including every header the peer names in ``Connection``), and only then does the proxy add its
own headers. Computing the ``Connection`` list after injecting would let a client delete the
proxy's ``Authorization`` by sending ``Connection: Authorization`` (Traefik CVE-2021-32813).
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from .exchange import REQUEST_ID_HEADER

__all__ = [
    "HOP_BY_HOP",
    "connection_tokens",
    "downstream_headers",
    "transfer_codings",
    "upstream_headers",
]

# RFC 9110 section 7.6.1: connection-specific fields, never forwarded.
# Sets hold lower-cased names: membership is tested with ``name.lower()``.
HOP_BY_HOP: frozenset[str] = frozenset(
    name.lower()
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)

# What the proxy never takes from the client: it sets these itself or they describe the
# client's own connection or credentials.
#  - Host: the upstream's own is set by the client session from the URL.
#  - Authorization / Proxy-Authorization: the proxy's token replaces whatever the client sent.
#  - Content-Length: the body is re-framed from the buffered copy (see body.py).
#  - Expect: the proxy has already answered "100-continue" and read the body itself.
_DROPPED_FROM_CLIENT: frozenset[str] = HOP_BY_HOP | {
    name.lower()
    for name in (
        "Host",
        "Authorization",
        "Proxy-Authorization",
        "Content-Length",
        "Expect",
        REQUEST_ID_HEADER,
    )
}

_DROPPED_FROM_UPSTREAM: frozenset[str] = HOP_BY_HOP | {REQUEST_ID_HEADER.lower()}


def connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> frozenset[str]:
    """The header names listed in every ``Connection`` header, lower-cased."""
    names: set[str] = set()
    for value in headers.getall("Connection", ()):
        names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(names)


def transfer_codings(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> list[str]:
    """The transfer codings a request's ``Transfer-Encoding`` lists, lower-cased, in order.

    aiohttp's parser already refuses a request whose last coding is not ``chunked``, but it
    accepts ``gzip, chunked`` and then only removes the chunking: the body would go to PandaDoc
    still gzip-coded, with nothing saying so. The proxy forwards only ``[]`` or ``["chunked"]``.
    """
    return [
        token.strip().lower()
        for value in headers.getall("Transfer-Encoding", ())
        for token in value.split(",")
        if token.strip()
    ]


def _dropped(headers: CIMultiDictProxy[str], always: frozenset[str]) -> frozenset[str]:
    if "Connection" not in headers:  # The usual case: no set to build.
        return always
    return always | connection_tokens(headers)


def upstream_headers(
    client: CIMultiDictProxy[str], *, authorization: str, request_id: str
) -> CIMultiDict[str]:
    """Headers for the request to PandaDoc: the client's end-to-end ones plus the proxy's.

    A repeated header is spelt like its first occurrence (``X-Tag: 1``, ``x-tag: 2`` go out as
    ``X-Tag: 1``, ``X-Tag: 2``): aiohttp's ``ClientSession._prepare_headers`` tracks the names
    it has seen case-sensitively and *replaces* on a new spelling, so the first value would be
    lost. Header names are case-insensitive (RFC 9110 section 5.1); values never change.
    """
    dropped = _dropped(client, _DROPPED_FROM_CLIENT)
    headers: CIMultiDict[str] = CIMultiDict()
    spelling: dict[str, str] = {}
    for name, value in client.items():
        lower = name.lower()
        if lower not in dropped:
            headers.add(spelling.setdefault(lower, name), value)
    # Added after filtering, so nothing the client sent can remove them.
    headers["Authorization"] = authorization
    headers[REQUEST_ID_HEADER] = request_id
    return headers


def downstream_headers(
    upstream: CIMultiDictProxy[str], *, request_id: str
) -> list[tuple[str, str]]:
    """Headers for the answer to the client: PandaDoc's end-to-end ones plus the request id.

    A list, for the response to extend its own header multidict with (one copy, not two).
    """
    dropped = _dropped(upstream, _DROPPED_FROM_UPSTREAM)
    headers = [(name, value) for name, value in upstream.items() if name.lower() not in dropped]
    headers.append((REQUEST_ID_HEADER, request_id))
    return headers
