"""Generic webhook: a JSON POST per batch, each row rendered from a template per operation.

Request (Pulse's documented contract, README "Activation"):

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <batch key>              same rows -> same key, so a resend is harmless
    X-Pulse-Signature: t=<unix>,v1=<hex>      HMAC-SHA256 of "<t>.<body>" with the signing secret
    {"batch_id": "<batch key>", "operations": [<row>, ...]}

A row is the operation's template rendered with `customer_id`, `operation`, `key` (the row's idempotency
key), `audience` and the mapped fields (Jinja, sandboxed; `{{ x | tojson }}` quotes a value); without a
template it is `{"operation", "customer_id", "idempotency_key", **fields}`, or in `events` mode a
Segment track call: `{"type": "track", "event": "Audience Entered" | "Audience Exited", "userId",
"messageId": <idempotency key>, "properties": {"audience", **fields}}`.

Answer: 2xx accepts the batch, except rows listed in an optional `{"rejected": [{"index": i | "key": k,
"reason": "..."}]}` body; 429 / 5xx are retried (honouring Retry-After); any other 4xx refuses the
batch, which the delivery loop splits until the rows at fault are found.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pulse.activation.destinations.base import (
    EVENT_NAMES,
    ConfigError,
    DeliveryError,
    HttpDestination,
    Outcome,
    Record,
    all_accepted,
    secret,
)

SIGNATURE_HEADER = "X-Pulse-Signature"
_encoder = msgspec.json.Encoder()
_jinja = ImmutableSandboxedEnvironment(autoescape=False)


def sign(secret_value: str, timestamp: int, body: bytes) -> str:
    """The signature header's value; receivers recompute it over the raw body they got."""
    digest = hmac.new(secret_value.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret_value: str, header: str, body: bytes, tolerance: float = 300.0) -> bool:
    """For receivers (and tests): a signature made with `secret_value` over `body`, not too old."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret_value, timestamp, body), header)


class WebhookDestination(HttpDestination):
    kind = "webhook"
    max_batch = 10_000

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=concurrency)
        url = options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("webhook: `url` must be an http(s) URL")
        self.url: str = url
        self.templates = {
            op: _jinja.from_string(text) for op, text in (options.get("templates") or {}).items()
        }
        self.audience = str(options.get("audience") or "")
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        self.signing_secret = (
            secret(options["signing_secret"], "webhook") if options.get("signing_secret") else None
        )

    def render_row(self, record: Record, mode: str = "mirror") -> bytes:
        template = self.templates.get(record.operation)
        if template is None and mode == "events":
            return _encoder.encode(
                {
                    "type": "track",
                    "event": EVENT_NAMES[record.operation],
                    "userId": record.customer_id,
                    "messageId": record.key,
                    "properties": {"audience": self.audience, **record.fields},
                }
            )
        if template is None:
            return _encoder.encode(
                {
                    "operation": record.operation,
                    "customer_id": record.customer_id,
                    "idempotency_key": record.key,
                    **record.fields,
                }
            )
        text = template.render(
            customer_id=record.customer_id,
            operation=record.operation,
            key=record.key,
            audience=self.audience,
            **record.fields,
        )
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError as error:
            raise ConfigError(
                f"webhook template for {record.operation!r} did not render JSON: {error}"
            ) from error
        return text.encode()

    def render(self, batch: Sequence[Record], batch_key: str, mode: str = "mirror") -> bytes:
        rows = b",".join(self.render_row(r, mode) for r in batch)
        return b'{"batch_id":' + _encoder.encode(batch_key) + b',"operations":[' + rows + b"]}"

    def request_headers(self, body: bytes, batch_key: str) -> dict[str, str]:
        headers = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": batch_key}
        if self.signing_secret:
            headers[SIGNATURE_HEADER] = sign(self.signing_secret, int(time.time()), body)
        return headers

    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        body = self.render(batch, batch_key, mode)
        response = self.request("POST", self.url, content=body, headers=self.request_headers(body, batch_key))
        if response.status_code >= 400:
            raise DeliveryError(
                f"HTTP {response.status_code}: {response.text[:500]}", status=response.status_code
            )
        outcomes = all_accepted(batch, response.status_code)
        rejected = _rejected_rows(response)
        if rejected:
            index_of = {r.key: i for i, r in enumerate(batch)}
            for item in rejected:
                index, key = item.get("index"), item.get("key")
                i = index if isinstance(index, int) else index_of.get(key) if isinstance(key, str) else None
                if i is not None and 0 <= i < len(batch):
                    outcomes[i] = Outcome(
                        batch[i].key, False, response.status_code, str(item.get("reason") or "rejected")
                    )
        return outcomes

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        body = self.render(batch, batch_key, mode)
        headers = self.request_headers(body, batch_key)
        if SIGNATURE_HEADER in headers:
            headers[SIGNATURE_HEADER] = "t=...,v1=..."
        return {"method": "POST", "url": self.url, "headers": headers, "body": msgspec.json.decode(body)}


def _rejected_rows(response) -> list[dict]:
    if not response.content or "json" not in response.headers.get("content-type", ""):
        return []
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return []
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return [r for r in rejected if isinstance(r, dict)] if isinstance(rejected, list) else []
