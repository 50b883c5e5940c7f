"""Klaviyo: list membership and profile properties, keyed by Pulse's customer id (`external_id`).

Contract (developers.klaviyo.com, API revision sent in the `revision` header; auth
`Authorization: Klaviyo-API-Key <private key>`; JSON:API bodies, `application/vnd.api+json`):
- adds and updates: `POST /api/profile-bulk-import-jobs` (Bulk Import Profiles, at most 10,000 profiles a
  job; an upsert by identifier) with the profiles' `external_id` and `properties`; in mirror mode the job's
  `relationships.lists` adds them to the list. Answer 202 with the job.
- removals (mirror): `GET /api/profiles?filter=any(external_id,[...])` (100 per page) finds the profiles'
  ids, then `DELETE /api/lists/{list_id}/relationships/profiles` removes them. A customer Klaviyo does not
  know is not on the list: accepted. In upsert mode a removal clears the mapped properties instead.
- errors: `{"errors": [{"status", "code", "title", "detail", "source": {"pointer"}}]}`; a 400 whose pointers
  name profiles (`/data/attributes/profiles/data/<i>/...`) rejects those rows with Klaviyo's detail and the
  rest of the batch is sent again without them; 429 carries Retry-After.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulse.activation.destinations.base import (
    ConfigError,
    DeliveryError,
    HttpDestination,
    Outcome,
    Record,
    all_accepted,
    secret,
)

POINTER = re.compile(r"^/data/attributes/profiles/data/(\d+)")
LOOKUP_PAGE = 100


class KlaviyoDestination(HttpDestination):
    kind = "klaviyo"
    max_batch = 10_000
    modes = frozenset({"mirror", "upsert"})
    default_rate = 10.0  # the bulk import endpoint's burst limit (10/s)

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=concurrency)
        self.base = str(options.get("base_url") or "https://a.klaviyo.com").rstrip("/")
        self.list_id = options.get("list_id")
        self.headers = {
            "Authorization": f"Klaviyo-API-Key {secret(options.get('api_key'), 'klaviyo api_key')}",
            "revision": str(options.get("revision") or "2024-10-15"),
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }

    def _import_body(self, batch: Sequence[Record], mode: str) -> dict:
        profiles = [
            {
                "type": "profile",
                "attributes": {
                    "external_id": r.customer_id,
                    "properties": dict(r.fields) if r.operation != "remove" else {k: None for k in r.fields},
                },
            }
            for r in batch
        ]
        data: dict[str, Any] = {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": profiles}},
        }
        if mode == "mirror":
            data["relationships"] = {"lists": {"data": [{"type": "list", "id": self.list_id}]}}
        return {"data": data}

    def _check(self, response) -> None:
        if response.status_code >= 400:
            raise DeliveryError(f"HTTP {response.status_code}: {_details(response)}", response.status_code)

    def _import(self, batch: Sequence[Record], mode: str) -> list[Outcome]:
        response = self.request(
            "POST",
            f"{self.base}/api/profile-bulk-import-jobs",
            content=json.dumps(self._import_body(batch, mode)),
            headers=self.headers,
        )
        if response.status_code == 400:
            bad = _pointed_rows(response)
            if bad and all(i < len(batch) for i in bad):
                rest = [r for i, r in enumerate(batch) if i not in bad]
                rejected = [Outcome(batch[i].key, False, 400, reason) for i, reason in bad.items()]
                return rejected + (self._import(rest, mode) if rest else [])
        self._check(response)
        return all_accepted(batch, response.status_code)

    def _unlist(self, batch: Sequence[Record]) -> list[Outcome]:
        for start in range(0, len(batch), LOOKUP_PAGE):
            chunk = batch[start : start + LOOKUP_PAGE]
            ids = ",".join(json.dumps(r.customer_id) for r in chunk)
            response = self.request(
                "GET",
                f"{self.base}/api/profiles",
                params={"filter": f"any(external_id,[{ids}])", "page[size]": str(LOOKUP_PAGE)},
                headers=self.headers,
            )
            self._check(response)
            found = [{"type": "profile", "id": p["id"]} for p in response.json().get("data", [])]
            if found:
                response = self.request(
                    "DELETE",
                    f"{self.base}/api/lists/{self.list_id}/relationships/profiles",
                    content=json.dumps({"data": found}),
                    headers=self.headers,
                )
                self._check(response)
        return all_accepted(batch, 204)

    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        if mode == "mirror" and not self.list_id:
            raise ConfigError("klaviyo: mirror mode needs `list_id`")
        removes = [r for r in batch if r.operation == "remove"] if mode == "mirror" else []
        removing = {r.key for r in removes}
        others = [r for r in batch if r.key not in removing]
        return [*(self._import(others, mode) if others else []), *(self._unlist(removes) if removes else [])]

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": f"{self.base}/api/profile-bulk-import-jobs",
            "body": self._import_body(batch, mode),
        }


def _errors(response) -> list[dict]:
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _details(response) -> str:
    errors = _errors(response)
    return "; ".join(f"{e.get('code')}: {e.get('detail')}" for e in errors) if errors else response.text[:300]


def _pointed_rows(response) -> dict[int, str]:
    """Row index -> Klaviyo's detail, for errors whose pointer names a profile of the job."""
    rows = {}
    for e in _errors(response):
        match = POINTER.match(str((e.get("source") or {}).get("pointer") or ""))
        if match:
            rows[int(match.group(1))] = f"{e.get('code')}: {e.get('detail')}"
    return rows
