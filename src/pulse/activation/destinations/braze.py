"""Braze: user attributes and custom events through `POST /users/track`, keyed by `external_id`.

Contract (braze.com/docs/api/endpoints/user_data/post_user_track): REST endpoint of the workspace's
instance (`https://rest.<instance>.braze.com`), `Authorization: Bearer <REST API key>`, body
`{"attributes": [...], "events": [...]}` with at most 75 objects per array. Answer 201
`{"message": "success", "attributes_processed", "events_processed", "errors": [{"type", "input_array",
"index"}]}`: objects named in `errors` are rejected with Braze's `type`, the others applied; 4xx bodies
carry `{"message"}`; 429 (and X-RateLimit-Reset) is retried.

- mirror: the audience's name is added to / removed from an array attribute (`audience_attribute`,
  default `pulse_audiences`) with Braze's `{"add": [...]}` / `{"remove": [...]}` array syntax;
- upsert: the mapped fields as attributes (nulls on removal, which Braze treats as unset);
- events: an "Audience Entered" / "Audience Exited" custom event with the audience and fields as properties.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pulse.activation.destinations.base import (
    EVENT_NAMES,
    ConfigError,
    DeliveryError,
    HttpDestination,
    Outcome,
    Record,
    secret,
)


class BrazeDestination(HttpDestination):
    kind = "braze"
    max_batch = 75
    default_rate = 900.0  # 3,000 requests per 3 s for /users/track, with headroom for other callers

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=concurrency)
        base = options.get("base_url")
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            raise ConfigError("braze: `base_url` (the workspace's REST endpoint) is required")
        self.url = base.rstrip("/") + "/users/track"
        self.audience = str(options.get("audience") or "")
        self.attribute = str(options.get("audience_attribute") or "pulse_audiences")
        self.token = secret(options.get("api_key"), "braze api_key")

    def _object(self, r: Record, mode: str) -> dict:
        if mode == "events":
            return {
                "external_id": r.customer_id,
                "name": EVENT_NAMES[r.operation],
                "time": datetime.now(UTC).isoformat(),
                "properties": {"audience": self.audience, "idempotency_key": r.key, **r.fields},
            }
        if mode == "mirror":
            return {
                "external_id": r.customer_id,
                self.attribute: {"remove" if r.operation == "remove" else "add": [self.audience]},
            }
        fields = {k: None for k in r.fields} if r.operation == "remove" else dict(r.fields)
        return {"external_id": r.customer_id, **fields}

    def _body(self, batch: Sequence[Record], mode: str) -> tuple[str, dict]:
        array = "events" if mode == "events" else "attributes"
        return array, {array: [self._object(r, mode) for r in batch]}

    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        array, body = self._body(batch, mode)
        response = self.request(
            "POST", self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            raise DeliveryError(
                f"HTTP {response.status_code}: {answer.get('message') or response.text[:300]}",
                response.status_code,
            )
        bad = {
            e["index"]: str(e.get("type") or "rejected")
            for e in answer.get("errors") or []
            if isinstance(e, dict) and e.get("input_array") == array and isinstance(e.get("index"), int)
        }
        return [Outcome(r.key, i not in bad, response.status_code, bad.get(i)) for i, r in enumerate(batch)]

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        return {"method": "POST", "url": self.url, "body": self._body(batch, mode)[1]}
