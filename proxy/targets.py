"""Which requests the proxy accepts to forward at all: origin-form targets, HTTP/1.x, and
paths that mean the same thing upstream as here.

Everything here runs before routing and before the body is read, and refuses with the
contract's 400 ``bad_request``: the proxy never sends a request anywhere but
``upstream.base_url``, and never one whose meaning could change on the way.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from .errors import BadRequest
from .headers import transfer_codings

__all__ = ["check_request", "check_target"]


def check_request(request: web.BaseRequest) -> None:
    """Refuse every request target but origin-form (``/path?query``), before any routing.

    An absolute-form target (``GET http://elsewhere/ HTTP/1.1``) would otherwise be routed by
    its path alone; refusing it keeps the proxy from ever being used to reach another host.
    Also refused, before the body is read: targets ``check_target`` finds unsafe to forward
    byte for byte, HTTP versions other than 1.0 and 1.1 (aiohttp's parser takes a bare
    ``GET /path`` as HTTP/0.9, and ``HTTP/2.0`` on an HTTP/1 connection), and transfer codings
    other than ``chunked`` (aiohttp undoes only the chunking, so the body would go upstream
    still coded, with nothing left saying so).
    Malformed framing never gets here: aiohttp's parser refuses it first (see server.py).
    """
    if request.method == "CONNECT":
        raise BadRequest("CONNECT is not supported: this is a reverse proxy for PandaDoc.")
    raw_path = request.raw_path
    if not raw_path.startswith("/"):
        raise BadRequest("Only origin-form request targets (/path?query) are accepted.")
    if request.version not in _HTTP_1:
        raise BadRequest("Only HTTP/1.0 and HTTP/1.1 requests are accepted.")
    check_target(raw_path)
    if "Transfer-Encoding" in request.headers and transfer_codings(request.headers) not in (
        [],
        ["chunked"],
    ):
        raise BadRequest("Transfer-Encoding other than chunked is not supported.")


_HTTP_1 = (aiohttp.HttpVersion10, aiohttp.HttpVersion11)


#: A "%" that does not start a percent-escape (RFC 3986 section 2.1: "%" HEXDIG HEXDIG).
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: An encoded control character (%00-%1F, %7F): NUL truncates, CR and LF split lines.
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
#: What upstream servers take for a path separator once decoded: "/", and on some "\".
_SEPARATORS = re.compile(r"[/\\]")


def check_target(raw_target: str) -> None:
    """Refuse (400) an origin-form target that would mean something else upstream than here.

    The path and query go upstream byte for byte (contract 4), so the proxy never rewrites a
    target: it refuses the few that cannot be forwarded that way safely.

    - A fragment (``#...``) is no part of a request target, and the client library would drop
      it: forwarding would silently change the request.
    - A broken percent-escape in the path (``%zz``, a trailing ``%``), and an encoded control
      character (``%00``, ``%0d%0a``...): decoders disagree on the first; decoded, a NUL
      truncates a path in C-based servers and CR LF split it into header or log lines. (The
      raw characters never get this far: aiohttp's parser refuses them.)
    - A dot-segment (``.`` or ``..``, also spelt ``%2e``, or hidden behind ``%2f``, ``\\`` or a
      ``;`` parameter): the upstream resolves it, so with a base URL that has a path prefix
      (``https://gateway/pandadoc``), ``/../other`` would reach a service outside the prefix
      with the PandaDoc token attached. Normalising it here instead would break "no
      normalisation", and no PandaDoc API path contains one.
    """
    if "#" in raw_target:
        raise BadRequest("A request target cannot carry a fragment (#...).")
    path = raw_target.partition("?")[0]
    if "%" not in path and "." not in path:
        return  # Nothing left that could be an escape or a dot-segment: most paths.
    if _BROKEN_ESCAPE.search(path) or _ENCODED_CONTROL.search(path):
        raise BadRequest(
            "The request path has an invalid percent-escape: % must be followed by two hex "
            "digits, and encoded control characters (%00-%1F, %7F) are refused."
        )
    pieces = _SEPARATORS.split(unquote(path))
    if any(piece.partition(";")[0] in (".", "..") for piece in pieces):
        raise BadRequest(
            "The request path contains a dot-segment (. or ..); the proxy forwards paths "
            "unchanged, so it refuses ones the upstream would resolve to another path."
        )
