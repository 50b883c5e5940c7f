"""Meta Custom Audiences (Marketing API): hashed customers added to / removed from a customer-file
custom audience.

Contract (developers.facebook.com/docs/marketing-api/reference/custom-audience/users):
- `POST /{version}/{audience_id}/users` adds, `DELETE` the same path removes; body
  `{"payload": {"schema": ["EMAIL", "PHONE"], "data": [[<sha256>, <sha256>], ...]}}`, at most 10,000 rows
  per request; the access token as `Authorization: Bearer`.
- Identifiers are SHA-256 of the normalised value (email trimmed and lowercased, phone E.164 digits):
  exactly the `email_sha256` / `phone_sha256` Pulse already holds, so nothing is re-hashed here.
- Answer: `{"audience_id", "session_id", "num_received", "num_invalid_entries", "invalid_entry_samples"}`;
  rows named in the samples are rejected with Meta's reason (Meta reports only samples: other invalid
  rows cannot be told apart and count as accepted). Errors: `{"error": {"message", "type", "code",
  "error_subcode", "fbtrace_id"}}`; the throttling codes (4, 17, 32, 613, 80003) are retried like a 429.
- Adds and removes are idempotent at Meta (an audience is a set), so a resent batch is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulse.activation.destinations.base import (
    ConfigError,
    DeliveryError,
    HttpDestination,
    Outcome,
    Record,
    secret,
)

THROTTLE_CODES = {4, 17, 32, 613, 80003, 80004}
SCHEMA = {"email_sha256": "EMAIL", "phone_sha256": "PHONE"}


class MetaDestination(HttpDestination):
    kind = "meta"
    max_batch = 10_000
    modes = frozenset({"mirror"})
    identifiers = ("email_sha256", "phone_sha256")
    default_rate = 5.0

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=concurrency)
        self.audience_id = str(options.get("audience_id") or "")
        if not self.audience_id.isdigit():
            raise ConfigError("meta: `audience_id` (the custom audience's numeric id) is required")
        base = str(options.get("base_url") or "https://graph.facebook.com").rstrip("/")
        self.url = f"{base}/{options.get('api_version', 'v25.0')}/{self.audience_id}/users"
        self.token = secret(options.get("access_token"), "meta access_token")

    def _payload(self, batch: Sequence[Record]) -> tuple[list[str], dict]:
        schema = [f for f in SCHEMA if any(r.fields.get(f) for r in batch)]
        data = [[r.fields.get(f) or "" for f in schema] for r in batch]
        return schema, {"payload": {"schema": [SCHEMA[f] for f in schema], "data": data}}

    def _call(self, method: str, batch: Sequence[Record]) -> list[Outcome]:
        schema, body = self._payload(batch)
        response = self.request(
            method, self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        answer = _json(response)
        if response.status_code >= 400 or "error" in answer:
            error = answer.get("error") or {}
            message = f"HTTP {response.status_code}: {error.get('message', response.text[:300])} (code {error.get('code')})"
            raise DeliveryError(message, response.status_code, retryable=error.get("code") in THROTTLE_CODES)
        samples = answer.get("invalid_entry_samples") or {}
        outcomes = []
        for r in batch:
            reason = next((samples[r.fields[f]] for f in schema if r.fields.get(f) in samples), None)
            outcomes.append(Outcome(r.key, reason is None, response.status_code, reason and str(reason)))
        return outcomes

    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        adds = [r for r in batch if r.operation != "remove"]
        removes = [r for r in batch if r.operation == "remove"]
        return [
            *(self._call("POST", adds) if adds else []),
            *(self._call("DELETE", removes) if removes else []),
        ]

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        return {"method": "POST/DELETE", "url": self.url, "body": self._payload(batch)[1]}


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
