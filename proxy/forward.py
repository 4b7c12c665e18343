"""The catch-all handler: send the client's request to PandaDoc with the token, stream the answer.

One exchange, in order:

1. the body is received whole (``body.py`` says why); ``targets.py`` has already refused any
   target that is not origin-form or would mean something else upstream;
2. the upstream URL is ``upstream.base_url`` + the raw path and query, byte for byte: aiohttp's
   ``request.path`` is percent-decoded, so only ``raw_path`` with ``encoded=True`` keeps
   ``%2F`` and friends as the client sent them;
3. headers are filtered by ``headers.py`` and the bearer token is added;
4. if PandaDoc rejected the credential, the credentials object (``credentials.py``) says what
   to send next: for the OAuth token, the stored one if this process's copy was behind, else a
   renewed one (``tokens/refresher.py``); the request is sent again, same method, path,
   headers and body. That is safe for every method, POST included: PandaDoc refused the
   request before acting on it. A rejection of a token obtained after the request was first
   rejected goes to the client as it is;
5. the answer's status and headers are relayed, then its body is streamed chunk by chunk with
   back-pressure, so memory does not grow with the size of a download.

``upstream.timeout_s`` bounds steps 2-4 up to PandaDoc's response headers, and then each wait
for the next chunk of the body (an idle timeout, not a total), with the coarse shared
deadlines of ``deadlines.py``.

Failures before the answer's headers become the contract's 502/504 errors. After the headers
have gone to the client there is no way to send an error any more, so a failing upstream
stream closes the client's connection: the client sees a truncated body, never a silently
shortened one that looks complete.
"""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .body import EMPTY_BODY, RequestBody, read_body
from .config import Config
from .credentials import Credentials
from .deadlines import Deadlines
from .errors import BadRequest, Overloaded, UpstreamTimeout, UpstreamUnreachable
from .exchange import EXCHANGE, ClientAborted, Exchange
from .headers import downstream_headers, upstream_headers
from .metrics import ProxyMetrics

__all__ = [
    "NO_AUTO_HEADERS",
    "ConcurrencyCap",
    "Forwarder",
    "PassThroughRequest",
    "RelayedResponse",
    "forward",
]

log = logging.getLogger("pandadoc_proxy.forward")

#: Methods whose repetition has no further effect (RFC 9110 section 9.2.2): only these are
#: retried when a pooled connection turns out to have been closed by PandaDoc.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Headers aiohttp's client would add on its own; the proxy adds none of them (contract 4).
NO_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_NO_AUTO_HEADERS: CIMultiDict[None] = CIMultiDict((name, None) for name in NO_AUTO_HEADERS)


class PassThroughRequest(aiohttp.ClientRequest):
    """aiohttp's client request, adding none of :data:`NO_AUTO_HEADERS` of its own.

    ``skip_auto_headers=NO_AUTO_HEADERS`` on the session means the same, but aiohttp then
    rebuilds a sorted multidict of those names and a copy of the request's headers for every
    request. This installs one shared, never-modified multidict instead; aiohttp reads
    ``_skip_auto_headers`` only for membership tests (client_reqrep.py). The forwarding tests
    check that none of these headers is added.
    """

    def update_auto_headers(self, skip_auto_headers: object) -> None:
        self._skip_auto_headers = _NO_AUTO_HEADERS


_CHUNK = 64 * 1024


class ConcurrencyCap:
    """At most ``limit`` forwarded requests at once in this process (0: no cap)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def __enter__(self) -> None:
        if self.limit and self.active >= self.limit:
            raise Overloaded()
        self.active += 1

    def __exit__(self, *exc_info: object) -> None:
        self.active -= 1


async def forward(request: web.Request) -> web.StreamResponse:
    """The catch-all route's handler."""
    return await request.app[FORWARDER].handle(request)


class Forwarder:
    """Everything one replica needs to forward a request, gathered once at start-up, so the
    hot path looks nothing up in the app."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        metrics: ProxyMetrics,
    ) -> None:
        self.config = config
        self.session = session
        self.credentials = credentials
        self.metrics = metrics
        self.concurrency = ConcurrencyCap(config.limits.max_concurrent_requests)
        self.deadlines = Deadlines()
        self._base_url = config.upstream.base_url.rstrip("/")
        self._timeout_s = config.upstream.timeout_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        exchange = request[EXCHANGE]
        limits = self.config.limits
        with self.concurrency:
            body = (
                await read_body(
                    request,
                    max_bytes=limits.max_body_bytes,
                    memory_bytes=limits.memory_body_bytes,
                    idle_timeout_s=limits.body_timeout_s,
                )
                if request.body_exists
                else EMPTY_BODY
            )
            # Every upstream response of this request, the replays' included: released here
            # and only here, whatever happened (an unfinished one is closed by its release).
            responses: list[aiohttp.ClientResponse] = []
            try:
                upstream, prefetched = await self._send_authorized(
                    request, exchange, body, responses
                )
                return await self._relay(request, exchange, upstream, prefetched)
            finally:
                for response in responses:
                    response.release()
                body.close()

    async def _send_authorized(
        self,
        request: web.Request,
        exchange: Exchange,
        body: RequestBody,
        responses: list[aiohttp.ClientResponse],
    ) -> tuple[aiohttp.ClientResponse, bytes | None]:
        """Send with the credentials' grant; after a rejection, as they say (``credentials.py``).

        Returns the answer to relay, and its body when it had to be read to judge it. Every
        response goes into ``responses``, whose owner releases them.
        """
        credentials = self.credentials
        grant = credentials.ready() or await credentials.grant()
        upstream = await self._send(request, exchange, body, grant.header, responses)
        if not credentials.may_reject(upstream.status):
            return upstream, None
        retry = credentials.after_rejection(grant)
        while not retry.exhausted:
            try:
                # A rejection's body is read (small, bounded) to decide, under the same
                # deadline as the headers were.
                with self.deadlines.within(self._timeout_s):
                    rejected, prefetched = await credentials.rejected(upstream)
            except TimeoutError:
                raise self._timed_out() from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnreachable(_describe(exc)) from None
            if not rejected:
                return upstream, prefetched
            grant = await retry.next_grant()
            self.metrics.replays.inc()
            exchange.replayed = True
            upstream = await self._send(request, exchange, body, grant.header, responses)
            if not credentials.may_reject(upstream.status):
                return upstream, None
        return upstream, None

    async def _send(
        self,
        request: web.Request,
        exchange: Exchange,
        body: RequestBody,
        authorization: str,
        responses: list[aiohttp.ClientResponse],
    ) -> aiohttp.ClientResponse:
        """Send the request upstream; the response once its headers have arrived (also added
        to ``responses``)."""
        # encoded=True: the path and query go out exactly as the client wrote them.
        url = URL(self._base_url + request.raw_path, encoded=True)
        headers = upstream_headers(
            request.headers, authorization=authorization, request_id=exchange.request_id
        )
        attempts = 2 if request.method in IDEMPOTENT_METHODS else 1
        started = time.perf_counter()
        try:
            for attempt in range(1, attempts + 1):
                try:
                    # The deadline covers connecting, sending and waiting for the response
                    # headers; the body that follows has an idle deadline (_stream_body).
                    with self.deadlines.within(self._timeout_s):
                        response = await self.session.request(
                            request.method,
                            url,
                            headers=headers,
                            data=None if body.empty else body.payload(),
                            allow_redirects=False,
                        )
                    responses.append(response)
                    return response
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    if isinstance(exc, aiohttp.ClientConnectorError) or attempt == attempts:
                        raise UpstreamUnreachable(_describe(exc)) from None
                    # A pooled keep-alive connection that PandaDoc had already closed: it
                    # cannot have processed the request, but aiohttp cannot prove that, so
                    # only idempotent requests are sent again.
                    log.info("retrying on a fresh connection", extra={"event": "upstream_retry"})
            raise AssertionError("unreachable")  # pragma: no cover
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamUnreachable("Connecting to PandaDoc timed out.") from None
        except TimeoutError:
            raise self._timed_out() from None
        except aiohttp.ClientResponseError as exc:
            # A response aiohttp could not parse: PandaDoc (or something on the way) is broken.
            raise UpstreamUnreachable(f"Invalid response from PandaDoc ({exc.status}).") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(_describe(exc)) from None
        except ValueError:
            # aiohttp's writer refuses header values with control characters.
            raise BadRequest("The request has a header value the proxy cannot send.") from None
        finally:
            waited = time.perf_counter() - started
            exchange.upstream_seconds += waited
            self.metrics.requests.upstream_seconds.observe(waited)

    def _timed_out(self) -> UpstreamTimeout:
        return UpstreamTimeout(f"PandaDoc did not answer within {self._timeout_s:g} seconds.")

    async def _relay(
        self,
        request: web.Request,
        exchange: Exchange,
        upstream: aiohttp.ClientResponse,
        prefetched: bytes | None,
    ) -> web.StreamResponse:
        if upstream.status == 101:
            # The proxy forwards no Upgrade (hop-by-hop), so PandaDoc has nothing to switch
            # to; relaying a bare 101 would leave the client on a connection in no protocol.
            raise UpstreamUnreachable(
                "PandaDoc answered 101 Switching Protocols, which the proxy never asks for."
            )
        response = RelayedResponse(
            upstream, downstream_headers(upstream.headers, request_id=exchange.request_id)
        )
        # What the proxy added before these headers go out: the whole wait less PandaDoc's.
        added = time.perf_counter() - exchange.started - exchange.upstream_seconds
        self.metrics.requests.proxy_added_seconds.observe(max(added, 0.0))
        try:
            await response.prepare(request)
        except ValueError:
            raise UpstreamUnreachable("PandaDoc sent a header the proxy cannot relay.") from None
        except ConnectionError:
            # The client left while PandaDoc was answering, before the first byte went out.
            raise ClientAborted("waiting") from None
        try:
            if prefetched is None:
                sent = await self._stream_body(upstream, response)
            else:
                sent = await _write_to_client(response, prefetched, sent=0)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # (A client that went away raises ClientAborted: its upstream response is released
            # unfinished, which closes that connection instead of draining it.)
            log.warning(
                "upstream failed mid-response; closing the client connection",
                extra={"event": "upstream_stream_error", "detail": type(exc).__name__},
            )
            if request.transport is not None:
                request.transport.close()
            return response
        try:
            await response.write_eof()
        except ConnectionError:
            raise ClientAborted("download", sent) from None
        return response

    async def _stream_body(
        self, upstream: aiohttp.ClientResponse, response: web.StreamResponse
    ) -> int:
        """Copy the body chunk by chunk, with back-pressure both ways; returns its length.

        The idle deadline runs only while waiting for PandaDoc's next chunk, never while the
        client is slow to take the last one (that is back-pressure, not a stalled upstream).
        It replaces aiohttp's ``sock_read``, which re-arms a timer on every received packet.
        """
        timeout_s = self._timeout_s
        read = upstream.content.read
        sent = 0
        with self.deadlines.within(timeout_s) as idle:
            while chunk := await read(_CHUNK):
                idle.pause()
                # _write_to_client, inlined: this runs once per chunk.
                try:
                    await response.write(chunk)
                except ConnectionError:
                    raise ClientAborted("download", sent) from None
                sent += len(chunk)
                idle.restart(timeout_s)
        return sent


#: The replica's forwarder, created once the client session and the credentials exist.
FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder", Forwarder)


async def _write_to_client(response: web.StreamResponse, data: bytes, *, sent: int) -> int:
    """Write ``data`` after ``sent`` bytes of the body; a client that has gone away becomes
    ClientAborted (aiohttp raises a ``ConnectionResetError`` on a closed connection, and a
    plain ``ConnectionError`` when the connection is lost during a wait for it to drain)."""
    try:
        await response.write(data)
    except ConnectionError:
        raise ClientAborted("download", sent) from None
    return sent + len(data)


def _describe(exc: BaseException) -> str:
    # The class name only: str() of some client errors includes request details.
    return f"Connection to PandaDoc failed ({type(exc).__name__})."


class RelayedResponse(web.StreamResponse):
    """A response relayed from PandaDoc, without the headers aiohttp's server would invent.

    ``Content-Type``, ``Server`` and ``Date`` reach the client only if PandaDoc sent them;
    aiohttp's ``_prepare_headers`` (web_response.py) would otherwise add
    ``application/octet-stream``, its own ``Server`` and a ``Date``. The proxy's own answers
    (errors, admin pages) keep aiohttp's defaults.

    Done by extending ``_prepare_headers`` rather than in an ``on_response_prepare`` signal
    handler: a signal runs for every response and costs a dispatch per request; this costs
    three lookups. The header tests check each of the three.
    """

    def __init__(self, upstream: aiohttp.ClientResponse, headers: list[tuple[str, str]]) -> None:
        super().__init__(status=upstream.status, reason=upstream.reason)
        self.headers.extend(headers)
        sent = upstream.headers
        self._not_sent = [name for name in _SERVER_DEFAULTS if name not in sent]

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in self._not_sent:
            self.headers.popall(name, None)


_SERVER_DEFAULTS = ("Content-Type", "Server", "Date")
