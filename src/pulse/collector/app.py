"""The collector: Segment's HTTP Tracking API, answered only once events are durable.

Endpoints (as Segment's, so its client libraries and RudderStack's send here unchanged):
`POST /v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/alias`, `/v1/group`
(and analytics.js's short forms `/v1/b`, `/v1/t`, ...); `GET /health`.

- Auth: HTTP basic auth with the write key as the user name (password empty), or, as Segment also
  allows for browsers, `writeKey` in the body's first 64 KB. Anything else: 401, decided before any
  more of the body is read (an anonymous request costs its headers and at most that prefix).
- Bodies may be gzip (or zlib) encoded (`Content-Encoding`).
- Limits (Segment's): 32 KB per event, 500 KB per batch, measured on the decoded JSON; and Pulse's: at
  most 2,000 events per batch, JSON nested at most 64 deep. Over a limit, or a body that is not JSON or
  not a batch: 400 with `code` and `message`, and the request's events (or its body) are kept in
  `raw.events_rejected` with that reason (a client does not retry a 400).
- Decoding and validation run on parser threads, never on the event loop; `/health` answers from memory.
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
import re
import sys
import zlib
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
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

from pulse.auth import basic_user, same_secret
from pulse.collector.writer import GroupCommitWriter, Hook, Unavailable
from pulse.config import Settings, get_settings
from pulse.db import warehouse_url
from pulse.events.contract import utc_now
from pulse.events.fast import plain_json, row_from_payload
from pulse.events.ingest import parse_payload
from pulse.events.load import Rejection, ensure_raw_tables
from pulse.events.pii import maybe_pii
from pulse.features.realtime import RealtimePusher
from pulse.scoring.api import SCORES_PREFIX, score_routes

log = logging.getLogger(__name__)

KB = 1024
MAX_EVENT_BYTES = 32 * KB
MAX_BATCH_BYTES = 500 * KB
MAX_WIRE_BYTES = 4 * 1024 * KB  # read at most this much of any body (compressed or not)
MAX_ERRORS_LISTED = 20
MAX_BATCH_EVENTS = 2_000  # Segment's libraries send at most a few hundred; each event costs CPU
MAX_JSON_DEPTH = 64  # levels of objects and arrays in one event: real events use under ten
# A request without an Authorization header must show its `writeKey` in this many (decoded) bytes
# before more is read (analytics.js puts it first, and its requests are at most 64 KB).
KEY_PREFIX_BYTES = 64 * KB
_WRITE_KEY_RE = re.compile(rb'"writeKey"[ \t\r\n]*:[ \t\r\n]*"((?:[^"\\]|\\.){1,512})"')
PARSER_THREADS = 2
SWITCH_INTERVAL = 0.001
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


@dataclass
class Refused:
    """A request refused as a whole: its answer, and what of it to keep in raw.events_rejected."""

    problem: Problem
    rejections: list[Rejection]


Parsed = tuple[list[tuple], list[Rejection], list[dict[str, Any]], int]  # rows, rejects, errors, bytes


class Problem(Exception):
    """A request-level failure: answered with `status`, all of the request's events rejected."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json", headers=headers)


async def _read_body(stream: AsyncIterator[bytes], prefix: bytes) -> bytes | Problem:
    """The rest of the body after `prefix`, up to MAX_WIRE_BYTES (else the 413 to answer)."""
    chunks, size = [prefix], len(prefix)
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_WIRE_BYTES:
            return Problem(413, "payload_too_large", f"request body is over {MAX_WIRE_BYTES // KB:,} KB")
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node if isinstance(child, dict | list))
    return deepest


def _depth_problem(encoded: list[bytes], items: list[Any], defaults: dict[str, Any]) -> Problem | None:
    """An event (or the batch's defaults) nested deeper than MAX_JSON_DEPTH. Counting brackets is C-fast
    and bounds the depth from above, so only events with many brackets are walked."""
    candidates = [item for raw, item in zip(encoded, items, strict=True) if _brackets(raw) > MAX_JSON_DEPTH]
    if defaults and _brackets(_encode(defaults)) > MAX_JSON_DEPTH:
        candidates.append(defaults)
    if any(_depth(item) > MAX_JSON_DEPTH for item in candidates):
        return Problem(400, "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return None


def _brackets(raw: bytes) -> int:
    return raw.count(b"{") + raw.count(b"[")


def _decompress(body: bytes, encoding: str, limit: int, partial: bool = False) -> bytes:
    """The decoded body, at most `limit` + 1 bytes (so a caller can tell it is over). `partial`: `body` is
    only a prefix of the stream (a truncated stream is not an error then)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Problem(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, detected from the header
    try:
        data = inflater.decompress(body, limit + 1)
        if len(data) <= limit and not partial:
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
        self.parsers = ThreadPoolExecutor(PARSER_THREADS, thread_name_prefix="pulse-parse")
        self.database_up: bool | None = None  # the last ping's answer (`watch_database`)

    # -- request handling --------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        call = CALLS.get(request.path_params["call"])
        if call is None:
            return _json(404, {"success": False, "code": "not_found", "message": "unknown endpoint"})
        received_at = utc_now()
        source = f"{SOURCE}:/v1/{call}"
        encoding = request.headers.get("content-encoding", "")
        header = request.headers.get("authorization")
        # Authenticate before spending anything on the body: the header, or a bounded prefix of it.
        if header is not None:
            if not same_secret(basic_user(header), self.settings.write_key):
                return self._unauthorized()
            wire = await _read_body(request.stream(), b"")
        else:
            keyed = await self._read_body_with_key(request, encoding)
            if keyed is None:
                return self._unauthorized()
            wire = keyed
        if isinstance(wire, Problem):
            return await self._reject_request(wire, [Rejection.of(b"", wire.message, source, None)])

        # Decoding and validating a batch is milliseconds of CPU: done on the parser threads, so the
        # event loop keeps answering /health, scores and other clients meanwhile.
        parsed = await asyncio.get_running_loop().run_in_executor(
            self.parsers, self._parse, wire, encoding, call, source, received_at, header is None
        )
        if isinstance(parsed, Refused):
            return await self._reject_request(parsed.problem, parsed.rejections)
        rows, rejections, errors, size = parsed
        try:
            await self._durable(rows, rejections, size)
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

    async def _read_body_with_key(self, request: Request, encoding: str) -> bytes | Problem | None:
        """The body if a valid `writeKey` is among its first `KEY_PREFIX_BYTES` (decoded); else None,
        having read no more than that prefix."""
        stream = request.stream()
        prefix = b""
        async for chunk in stream:
            prefix += chunk
            if len(prefix) >= KEY_PREFIX_BYTES:
                break
        try:
            head = _decompress(prefix, encoding, KEY_PREFIX_BYTES, partial=True)
        except Problem:
            return None
        match = _WRITE_KEY_RE.search(head, 0, KEY_PREFIX_BYTES)
        try:
            key = msgspec.json.decode(b'"' + match.group(1) + b'"', type=str) if match else None
        except msgspec.DecodeError:
            key = None
        if not same_secret(key, self.settings.write_key):
            return None
        return await _read_body(stream, prefix)

    def _parse(
        self, wire: bytes, encoding: str, call: str, source: str, received_at: datetime, body_key: bool
    ) -> Parsed | Refused:
        """Decode, check and validate a request's events (on a parser thread): rows and rejects, or the
        request refused as a whole (with what to keep of it in raw.events_rejected)."""
        try:
            body = _decompress(wire, encoding, MAX_WIRE_BYTES)
        except Problem as refused:
            return Refused(refused, [Rejection.of(b"", refused.message, source, None)])
        try:
            document = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            problem = (
                Problem(400, "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                if isinstance(error, RecursionError)
                else Problem(400, "invalid_json", f"invalid JSON: {error}")
            )
            return Refused(problem, [Rejection.of(body, problem.message, source, None)])
        if body_key and not (
            isinstance(document, dict) and same_secret(document.get("writeKey"), self.settings.write_key)
        ):  # the prefix held a writeKey, but not the body's own
            problem = Problem(401, "unauthorized", "a valid write key is required")
            return Refused(problem, [])
        try:
            items, defaults = self._events_of(document, call)
        except Problem as refused:
            return Refused(refused, [Rejection.of(body, refused.message, source, None)])
        if len(items) > MAX_BATCH_EVENTS:
            problem = Problem(
                400,
                "too_many_events",
                f"{len(items):,} events in one batch; the limit is {MAX_BATCH_EVENTS:,}",
            )
            return Refused(problem, [Rejection.of(body, problem.message, source, None)])
        encoded = [_encode(item) for item in items]
        too_much = self._size_problem(len(body), encoded, call) or _depth_problem(encoded, items, defaults)
        if too_much is not None:
            if too_much.code == "too_deep":
                return Refused(too_much, [Rejection.of(body, too_much.message, source, None)])
            return Refused(
                too_much,
                [
                    Rejection.of(raw, too_much.message, source, index)
                    for index, raw in enumerate(encoded, start=1)
                ],
            )

        rows: list = []
        rejections: list = []
        errors: list[dict[str, Any]] = []
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
        return rows, rejections, errors, len(body)

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

    async def _reject_request(self, problem: Problem, rejections: list[Rejection]) -> Response:
        """Keep what was refused in raw.events_rejected, then answer the problem's status."""
        if problem.status == 401:
            return self._unauthorized()
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

    async def _durable(self, rows: list[tuple], rejections: list[Rejection], size: int = 0) -> None:
        if not rows and not rejections:
            return
        future = self.writer.submit(rows, rejections, size)
        try:
            # On timeout wait_for cancels the future: the writer drops the request if it has not
            # started writing it (the client retries; messageId makes a late write harmless anyway).
            await asyncio.wait_for(asyncio.wrap_future(future), self.ack_timeout)
        except TimeoutError:
            raise Unavailable(f"not written within {self.ack_timeout:g} s; retry") from None

    # -- health ----------------------------------------------------------------------------------------
    async def watch_database(self, every: float = 2.0) -> None:
        """Ping the warehouse every `every` seconds (a task of the server's life), so /health answers
        from memory at once, however busy the server is."""

        def ping() -> bool:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("select 1")
                return True
            except (psycopg.Error, OSError) as error:
                log.warning("warehouse ping failed: %s", error)
                return False

        while True:
            try:
                self.database_up = await asyncio.wait_for(asyncio.to_thread(ping), 5)
            except TimeoutError:
                self.database_up = False
            await asyncio.sleep(every)

    async def health(self, request: Request) -> Response:
        """200 when the warehouse answers, every writer is alive, no request has waited longer than the
        ack timeout and the last write did not fail; else 503 with which. No error text: this endpoint
        needs no key (the log has the errors)."""
        writers = self.writer.health()
        problems = []
        if self.database_up is False:
            problems.append("database_down")
        if writers["writers_alive"] < writers["writers"]:
            problems.append("writer_dead")
        if writers["oldest_wait_seconds"] > self.ack_timeout:
            problems.append("writer_stuck")
        if self.writer.failing(within=self.ack_timeout):
            problems.append("writes_failing")
        stats = self.writer.stats
        body = {
            "status": "unavailable" if problems else "ok",
            "problems": problems,
            "database": {None: "unknown", True: "up", False: "down"}[self.database_up],
            **writers,
            "commits": stats.commits,
            "events_written": stats.rows,
            "requests_dropped": stats.dropped,
        }
        return _json(503 if problems else 200, body)


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
    collector = Collector(settings, [*hooks, realtime])

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await asyncio.to_thread(ensure_raw_tables, collector.url)
        try:
            await asyncio.wait_for(asyncio.to_thread(_warm_up_realtime, settings), WARM_UP_SECONDS)
        except TimeoutError:
            log.warning("real-time warm-up still running after %g s; serving anyway", WARM_UP_SECONDS)
        collector.writer.start()
        watcher = asyncio.create_task(collector.watch_database())
        realtime.start()
        # What exists now (modules, the app) lives as long as the server: move it out of the garbage
        # collector's reach, so its full passes walk only request garbage, not every object ever
        # imported (such a pass took tens of milliseconds, held the GIL, and showed up as p99).
        gc.collect()
        gc.freeze()
        # Parser, writer and hook threads hold the GIL for milliseconds at a time; the event loop waits
        # for it up to the switch interval on every step. 1 ms instead of Python's 5 ms keeps /health and
        # small requests prompt while big batches are parsed (measured: /health p99 500 -> 170 ms with
        # 20 clients posting 500 KB batches on a saturated 2-core machine).
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            yield
        finally:
            watcher.cancel()
            collector.parsers.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(collector.writer.close)
            await asyncio.to_thread(realtime.close)

    routes = [
        Route("/v1/{call:str}", collector.handle, methods=["POST"]),
        Route("/health", collector.health, methods=["GET"]),
        *score_routes(settings),  # GET /v1/scores/{customer_id}
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(_BrowserCors)])
    app.state.collector = collector
    return app
