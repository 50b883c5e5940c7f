"""The collector: Segment's HTTP Tracking API, answered only once events are durable.

Endpoints (as Segment's, so its client libraries and RudderStack's send here unchanged):
`POST /v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/alias`, `/v1/group`
(and analytics.js's short forms `/v1/b`, `/v1/t`, ...); `GET /health`.

- Auth: HTTP basic auth with the write key as the user name (password empty), or, as Segment also
  allows for browsers, `writeKey` in the body. Anything else: 401.
- Bodies may be gzip (or zlib) encoded (`Content-Encoding`).
- Limits (Segment's): 32 KB per event, 500 KB per batch, measured on the decoded JSON. Over a limit, or
  a body that is not JSON or not a batch: 400 with `code` and `message`, and every event of the request
  is kept in `raw.events_rejected` with that reason (a client does not retry a 400).
- Per-event validation failures do not fail the request: the valid events are accepted, the others are
  kept in `raw.events_rejected`, and the 200 body says `accepted`, `rejected` and why.
- 200 only after COMMIT (see `writer.GroupCommitWriter`); 503 (with `Retry-After`) if PostgreSQL cannot
  be reached in time. Retries are harmless: `messageId` is the idempotency key. An event without a
  `messageId` gets a deterministic one (a hash of its content), so its retries are deduplicated too.
- Clock skew is corrected as Segment does: `timestamp + (receivedAt - sentAt)`, `sentAt` taken from the
  event or its batch, `receivedAt` being this server's clock when the request arrived.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import zlib
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pulse.collector.auth import basic_user, same_secret
from pulse.collector.scores import SCORES_PREFIX, score_routes
from pulse.collector.writer import GroupCommitWriter, Hook, Unavailable
from pulse.config import Settings, get_settings
from pulse.db import warehouse_url
from pulse.events.contract import utc_now
from pulse.events.fast import plain_json, row_from_payload
from pulse.events.ingest import parse_payload
from pulse.events.load import Rejection, ensure_raw_tables
from pulse.events.pii import maybe_pii
from pulse.features.realtime import RealtimePusher
from pulse.triggers.service import TriggerService

log = logging.getLogger(__name__)

KB = 1024
MAX_EVENT_BYTES = 32 * KB
MAX_BATCH_BYTES = 500 * KB
MAX_WIRE_BYTES = 4 * 1024 * KB  # read at most this much of any body (compressed or not)
MAX_ERRORS_LISTED = 20
SOURCE = "collector"

CALLS = {
    "batch": "batch",
    "b": "batch",
    "import": "batch",  # Segment's older name for batch
    "track": "track",
    "t": "track",
    "identify": "identify",
    "i": "identify",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "alias": "alias",
    "a": "alias",
    "group": "group",
    "g": "group",
}

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Problem(Exception):
    """A request-level failure: answered with `status`, all of the request's events rejected."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json", headers=headers)


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WIRE_BYTES:
            raise Problem(413, "payload_too_large", f"request body is over {MAX_WIRE_BYTES // KB:,} KB")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Problem(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, detected from the header
    try:
        data = inflater.decompress(body, limit + 1)
        if len(data) <= limit:
            data += inflater.flush()
    except zlib.error as error:
        raise Problem(400, "invalid_encoding", f"could not decompress the {encoding} body: {error}") from None
    return data


def _message_id(event: dict[str, Any]) -> str:
    """A deterministic id for an event sent without one: the same event retried gets the same id."""
    content = {k: v for k, v in event.items() if k not in ("sentAt", "receivedAt", "writeKey")}
    digest = hashlib.sha256(_encode(content)).hexdigest()[:32]
    return f"pulse-{digest}"


class Collector:
    def __init__(self, settings: Settings, hooks: Sequence[Hook] = ()):
        self.settings = settings
        self.url = warehouse_url(settings)
        self.writer = GroupCommitWriter(self.url, hooks=hooks)
        self.ack_timeout = settings.collector_ack_timeout

    # -- request handling --------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        call = CALLS.get(request.path_params["call"])
        if call is None:
            return _json(404, {"success": False, "code": "not_found", "message": "unknown endpoint"})
        received_at = utc_now()
        source = f"{SOURCE}:/v1/{call}"
        header_user = basic_user(request.headers.get("authorization"))
        if request.headers.get("authorization") and (
            header_user is None or not same_secret(header_user, self.settings.write_key)
        ):
            return self._unauthorized()

        try:
            body = _decompress(
                await _read_body(request), request.headers.get("content-encoding", ""), MAX_WIRE_BYTES
            )
        except Problem as problem:
            if header_user is None:
                return self._unauthorized()
            return await self._reject_request(problem, None, b"", source)

        try:
            document = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            if header_user is None:
                return self._unauthorized()
            problem = Problem(400, "invalid_json", f"invalid JSON: {error}")
            return await self._reject_request(problem, None, body, source)

        if header_user is None:
            key = document.get("writeKey") if isinstance(document, dict) else None
            if not isinstance(key, str) or not same_secret(key, self.settings.write_key):
                return self._unauthorized()

        try:
            items, defaults = self._events_of(document, call)
        except Problem as problem:
            return await self._reject_request(problem, None, body, source)
        encoded = [_encode(item) for item in items]
        problem = self._size_problem(len(body), encoded, call)
        if problem is not None:
            return await self._reject_request(problem, items, body, source, encoded)

        rows, rejections, errors = [], [], []
        batch_pii = maybe_pii(_encode(defaults)) if defaults else False
        # Well-formed events take the fast path (the contract's own rows, see pulse.events.fast) unless
        # the batch-level defaults could hold PII, a NUL escape or deep nesting.
        fast_ok = not defaults or plain_json(_encode(defaults))
        for index, (item, raw) in enumerate(zip(items, encoded, strict=True), start=1):
            event = self._prepare(item, call, defaults)
            row = (
                row_from_payload(event, raw, SOURCE, received_at, server_received=received_at)
                if fast_ok
                else None
            )
            if row is not None:
                rows.append(row)
                continue
            if isinstance(event, dict):
                event["receivedAt"] = received_at  # this server's clock, whatever the client claimed
            parsed = parse_payload(
                event, SOURCE, index, received_at, raw=raw, scrub_pii=batch_pii or maybe_pii(raw)
            )
            if isinstance(parsed, Rejection):
                parsed = Rejection(parsed.payload, parsed.reason, source, index)
                rejections.append(parsed)
                if len(errors) < MAX_ERRORS_LISTED:
                    message_id = item.get("messageId") if isinstance(item, dict) else None
                    errors.append({"index": index, "messageId": message_id, "reason": parsed.reason})
            else:
                rows.append(parsed)

        try:
            await self._durable(rows, rejections)
        except Unavailable as error:
            return _json(
                503,
                {"success": False, "code": "unavailable", "message": str(error)},
                headers={"Retry-After": "1"},
            )
        body_out: dict[str, Any] = {"success": True, "accepted": len(rows), "rejected": len(rejections)}
        if errors:
            body_out["errors"] = errors
        return _json(200, body_out)

    @staticmethod
    def _size_problem(body_size: int, encoded: list[bytes], call: str) -> Problem | None:
        limit = MAX_BATCH_BYTES if call == "batch" else MAX_EVENT_BYTES
        if body_size > limit:
            what = "batch" if call == "batch" else "event"
            return Problem(
                400, "payload_too_large", f"{what} is {body_size:,} bytes; the limit is {limit // KB} KB"
            )
        for index, raw in enumerate(encoded, start=1):
            if len(raw) > MAX_EVENT_BYTES:
                return Problem(
                    400,
                    "payload_too_large",
                    f"event {index} is {len(raw):,} bytes; the limit is {MAX_EVENT_BYTES // KB} KB",
                )
        return None

    def _unauthorized(self) -> Response:
        return _json(
            401,
            {"success": False, "code": "unauthorized", "message": "a valid write key is required"},
            headers={"WWW-Authenticate": 'Basic realm="pulse"'},
        )

    @staticmethod
    def _events_of(document: Any, call: str) -> tuple[list[Any], dict[str, Any]]:
        """The request's events and the batch-level defaults (sentAt, context) to apply to them."""
        if call != "batch":
            if not isinstance(document, dict):
                raise Problem(400, "invalid_event", f"expected a JSON object, got {type(document).__name__}")
            return [document], {}
        if isinstance(document, list):
            return document, {}
        if isinstance(document, dict) and isinstance(document.get("batch"), list):
            defaults = {k: document[k] for k in ("sentAt", "context") if k in document}
            return document["batch"], defaults
        raise Problem(400, "invalid_batch", 'expected {"batch": [...]} or an array of events')

    @staticmethod
    def _prepare(item: Any, call: str, defaults: dict[str, Any]) -> Any:
        """The event as the contract reads it (batch defaults applied); `receivedAt` is set by the
        caller (the fast path takes the server's clock separately)."""
        if not isinstance(item, dict):
            return item
        event = dict(item)
        if call != "batch":
            event["type"] = call  # the endpoint names the call
        if "sentAt" not in event and "sentAt" in defaults:
            event["sentAt"] = defaults["sentAt"]
        batch_context = defaults.get("context")
        if isinstance(batch_context, dict):
            own = event.get("context")
            event["context"] = {**batch_context, **own} if isinstance(own, dict) else batch_context
        if not event.get("messageId"):
            event["messageId"] = _message_id(item)
        return event

    async def _reject_request(
        self,
        problem: Problem,
        items: list[Any] | None,
        body: bytes,
        source: str,
        encoded: list[bytes] | None = None,
    ) -> Response:
        """Keep every event of a refused request in raw.events_rejected, then answer its status."""
        if items and encoded and len(encoded) == len(items):
            rejections = [
                Rejection.of(raw, problem.message, source, index)
                for index, raw in enumerate(encoded, start=1)
            ]
        else:
            rejections = [Rejection.of(body, problem.message, source, None)]
        try:
            await self._durable([], rejections)
        except Unavailable:
            log.warning("could not record a refused request (%s)", problem.message)
        return _json(
            problem.status,
            {
                "success": False,
                "code": problem.code,
                "message": problem.message,
                "accepted": 0,
                "rejected": len(rejections),
            },
        )

    async def _durable(self, rows: list[tuple], rejections: list[Rejection]) -> None:
        if not rows and not rejections:
            return
        future = self.writer.submit(rows, rejections)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), self.ack_timeout)
        except TimeoutError:
            raise Unavailable(f"not written within {self.ack_timeout:g} s; retry") from None

    # -- health ----------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        def ping() -> None:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("select 1")

        try:
            await asyncio.wait_for(asyncio.to_thread(ping), 3)
        except (psycopg.Error, OSError, TimeoutError) as error:
            return _json(
                503,
                {"status": "unavailable", "database": "down", "error": str(error).strip()[:500]},
            )
        stats = self.writer.stats
        return _json(
            200,
            {
                "status": "ok",
                "database": "up",
                "queued_events": self.writer.queued_rows,
                "commits": stats.commits,
                "events_written": stats.rows,
            },
        )


WARM_UP_SECONDS = 15.0


def _warm_up_realtime(settings: Settings) -> None:
    """Build once what the real-time hook builds on its first push: Feast's store, seconds of imports
    and first-call instrumentation. Done before serving, so that work does not compete for the GIL with
    the first requests (it was the collector's worst latency under load: a second or more)."""
    try:
        from pulse.features.realtime import FEATURE_VIEW
        from pulse.features.store import feature_store

        feature_store(settings).get_stream_feature_view(FEATURE_VIEW)
    except Exception:  # noqa: BLE001 - not applied yet, no registry: the hook copes; this only warms up
        log.debug("real-time warm-up", exc_info=True)


class _BrowserCors:
    """Any origin may POST events (browsers send them with the public write key); the scoring API gets
    no CORS headers at all: it is read server-side with a secret key, never from a page."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=["*"], allow_methods=["POST"], allow_headers=["*"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SCORES_PREFIX):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)


def create_app(settings: Settings | None = None, hooks: Sequence[Hook] = ()) -> Starlette:
    """The collector as an ASGI app (uvicorn: `pulse.collector.app:create_app`, factory)."""
    settings = settings or get_settings()
    realtime = RealtimePusher(settings)  # post-commit hook: real-time features to Feast, batched
    triggers = TriggerService(settings, realtime) if settings.triggers_enabled else None
    collector = Collector(settings, [*hooks, realtime, *([triggers.hook] if triggers else [])])

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await asyncio.to_thread(ensure_raw_tables, collector.url)
        try:
            await asyncio.wait_for(asyncio.to_thread(_warm_up_realtime, settings), WARM_UP_SECONDS)
        except TimeoutError:
            log.warning("real-time warm-up still running after %g s; serving anyway", WARM_UP_SECONDS)
        if triggers:  # re-evaluates what a crash left unevaluated, then fires due timers
            await asyncio.to_thread(triggers.start)
        collector.writer.start()
        realtime.start()
        # What exists now (modules, the app) lives as long as the server: move it out of the garbage
        # collector's reach, so its full passes walk only request garbage, not every object ever
        # imported (such a pass took tens of milliseconds, held the GIL, and showed up as p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await asyncio.to_thread(collector.writer.close)
            await asyncio.to_thread(realtime.close)
            if triggers:
                await asyncio.to_thread(triggers.close)

    routes = [
        Route("/v1/{call:str}", collector.handle, methods=["POST"]),
        Route("/health", collector.health, methods=["GET"]),
        *score_routes(settings),  # GET /v1/scores/{customer_id}
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(_BrowserCors)])
    app.state.collector = collector
    app.state.triggers = triggers
    return app
