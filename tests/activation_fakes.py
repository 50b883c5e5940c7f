"""Local HTTP servers that speak each destination's documented contract, for activation tests.

One `FakeVendor` per test: a real HTTP server on 127.0.0.1 (a thread), configured with the vendor's
contract (`kind`) and with faults to inject:
- `throttle(n, retry_after)`: the next n requests answer 429 with `Retry-After`;
- `fail_once(customer_id, status)`: the first request carrying that customer answers `status`;
- `bad(customer_id, reason)`: that customer's row is refused the way the vendor refuses a row;
- `hold_after(n)`: after applying its n-th request the server stops answering (for kill -9 tests).
It keeps every request (`requests`), what it applied per row idempotency key (`applied`: key -> times;
keys it has seen before are not applied again, as a vendor honouring idempotency keys would) and the
resulting state: `members` (list / audience membership) and `profiles` (attributes).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "test-token"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeVendor:
    kind: str
    webhook_secret: str | None = None
    batch_refusal: bool = False  # webhook: refuse a whole batch holding a bad row (400) instead of per row
    requests: list[Seen] = field(default_factory=list)
    applied: Counter = field(default_factory=Counter)
    duplicates: int = 0
    members: set[str] = field(default_factory=set)
    profiles: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    bad_rows: dict[str, str] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    retry_after: str = "1"
    hold_at: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- configuration -------------------------------------------------------------------------------
    def throttle(self, n: int, retry_after: str = "1") -> None:
        self.throttled, self.retry_after = n, retry_after

    def fail_once(self, customer_id: str, status: int = 500) -> None:
        self.failing[customer_id] = status

    def bad(self, customer_id: str, reason: str) -> None:
        self.bad_rows[customer_id] = reason

    def hold_after(self, n: int) -> None:
        self.hold_at = n

    # -- server --------------------------------------------------------------------------------------
    def start(self) -> FakeVendor:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status, headers, payload = vendor.handle(seen)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    # -- contract ------------------------------------------------------------------------------------
    def handle(self, seen: Seen) -> tuple[int, dict, Any]:
        with self.lock:
            self.requests.append(seen)
            if self.throttled > 0:
                self.throttled -= 1
                return 429, {"Retry-After": self.retry_after}, self.rate_limit_body()
        return getattr(self, f"_{self.kind}")(seen)

    def rate_limit_body(self) -> Any:
        return {
            "klaviyo": {"errors": [{"status": 429, "code": "throttled", "detail": "Request was throttled."}]},
            "meta": {
                "error": {"message": "User request limit reached", "type": "OAuthException", "code": 17}
            },
            "braze": {"message": "Rate limit exceeded"},
        }.get(self.kind, {"error": "rate limited"})

    def _fault(self, customers: list[str]) -> int | None:
        with self.lock:
            for c in customers:
                if c in self.failing:
                    return self.failing.pop(c)
        return None

    def _apply(self, key: str, change) -> None:
        with self.lock:
            if self.applied[key]:
                self.duplicates += 1
                return
            self.applied[key] += 1
            change()
            if self.hold_at is not None and len(self.applied) >= self.hold_at:
                self.held.set()
        if self.held.is_set():
            time.sleep(3600)  # applied, never acknowledged: the client is killed meanwhile

    # webhook: {"batch_id", "operations": [{"operation", "customer_id", "idempotency_key", ...}]}
    def _webhook(self, seen: Seen):
        if self.webhook_secret is not None:
            from pulse.activation.destinations.webhook import verify

            if not verify(self.webhook_secret, seen.headers.get("x-pulse-signature", ""), seen.body):
                return 401, {}, {"error": "bad signature"}
        if not seen.headers.get("idempotency-key"):
            return 400, {}, {"error": "Idempotency-Key header required"}
        operations = [_from_track(op) for op in seen.json["operations"]]
        status = self._fault([op["customer_id"] for op in operations])
        if status:
            return status, {}, {"error": "injected failure"}
        bad = [i for i, op in enumerate(operations) if op["customer_id"] in self.bad_rows]
        if bad and self.batch_refusal:
            return 422, {}, {"error": f"invalid row: {self.bad_rows[operations[bad[0]]['customer_id']]}"}
        for i, op in enumerate(operations):
            if i in bad:
                continue
            cid = op["customer_id"]
            if "track" in op:
                self._apply(op["idempotency_key"], lambda op=op: self.events.append(op["track"]))
            if op["operation"] == "remove":
                self._apply(op["idempotency_key"], lambda cid=cid: self.members.discard(cid))
            else:
                self._apply(
                    op["idempotency_key"],
                    lambda cid=cid, op=op: (self.members.add(cid), self.profiles.__setitem__(cid, op)),
                )
        rejected = [{"index": i, "reason": self.bad_rows[operations[i]["customer_id"]]} for i in bad]
        return 200, {}, {"accepted": len(operations) - len(bad), "rejected": rejected}

    # Meta Custom Audiences: POST (add) / DELETE (remove) /{version}/{audience_id}/users
    def _meta(self, seen: Seen):
        match = re.fullmatch(r"/v\d+\.\d+/(\d+)/users", urlparse(seen.path).path)
        if not match or seen.method not in ("POST", "DELETE"):
            return (
                404,
                {},
                {"error": {"message": "Unknown path", "type": "GraphMethodException", "code": 100}},
            )
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return (
                400,
                {},
                {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}},
            )
        payload = seen.json["payload"]
        schema, data = payload["schema"], payload["data"]
        if len(data) > 10_000:
            return (
                400,
                {},
                {
                    "error": {
                        "message": "Too many users in one request",
                        "type": "OAuthException",
                        "code": 100,
                    }
                },
            )
        email = schema.index("EMAIL")
        hashes = [row[email] for row in data]
        if self._fault(hashes):
            return (
                500,
                {},
                {"error": {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}},
            )
        invalid = {h: self.bad_rows[h] for h in hashes if h in self.bad_rows}
        invalid.update(
            {h: "invalid SHA-256 hash" for h in hashes if not re.fullmatch(r"[0-9a-f]{64}", h or "")}
        )
        for h in hashes:
            if h not in invalid:
                key = f"{seen.method}:{h}:{len(self.requests)}"
                self._apply(
                    key,
                    (lambda h=h: self.members.add(h))
                    if seen.method == "POST"
                    else (lambda h=h: self.members.discard(h)),
                )
        return (
            200,
            {},
            {
                "audience_id": match.group(1),
                "session_id": str(len(self.requests)),
                "num_received": len(data),
                "num_invalid_entries": len(invalid),
                "invalid_entry_samples": invalid,
            },
        )

    # Klaviyo: bulk import jobs (add / update, with list relationship), profile lookup, list removal
    def _klaviyo(self, seen: Seen):
        if seen.headers.get("authorization") != f"Klaviyo-API-Key {TOKEN}":
            return (
                401,
                {},
                {
                    "errors": [
                        {
                            "status": 401,
                            "code": "not_authenticated",
                            "detail": "Missing or invalid private key.",
                        }
                    ]
                },
            )
        if not seen.headers.get("revision"):
            return (
                400,
                {},
                {"errors": [{"status": 400, "code": "invalid", "detail": "revision header is required"}]},
            )
        url = urlparse(seen.path)
        if seen.method == "POST" and url.path == "/api/profile-bulk-import-jobs":
            profiles = seen.json["data"]["attributes"]["profiles"]["data"]
            if len(profiles) > 10_000:
                return (
                    413,
                    {},
                    {"errors": [{"status": 413, "code": "too_large", "detail": "max 10,000 profiles"}]},
                )
            ids = [p["attributes"]["external_id"] for p in profiles]
            status = self._fault(ids)
            if status:
                return status, {}, {"errors": [{"status": status, "code": "error", "detail": "injected"}]}
            bad = [i for i, e in enumerate(ids) if e in self.bad_rows]
            if bad:
                return (
                    400,
                    {},
                    {
                        "errors": [
                            {
                                "status": 400,
                                "code": "invalid",
                                "title": "Invalid input.",
                                "detail": self.bad_rows[ids[i]],
                                "source": {
                                    "pointer": f"/data/attributes/profiles/data/{i}/attributes/properties"
                                },
                            }
                            for i in bad
                        ]
                    },
                )
            lists = seen.json["data"].get("relationships", {}).get("lists", {}).get("data", [])
            for p, e in zip(profiles, ids, strict=True):
                key = f"import:{e}:{json.dumps(p['attributes'], sort_keys=True)}"

                def change(e=e, p=p):
                    self.profiles.setdefault(e, {}).update(p["attributes"].get("properties") or {})
                    if lists:
                        self.members.add(e)

                self._apply(key, change)
            return (
                202,
                {},
                {
                    "data": {
                        "type": "profile-bulk-import-job",
                        "id": f"job{len(self.requests)}",
                        "attributes": {"status": "queued", "total_count": len(profiles)},
                    }
                },
            )
        if seen.method == "GET" and url.path == "/api/profiles":
            query = parse_qs(url.query)
            found = re.fullmatch(r"any\(external_id,\[(.*)\]\)", query.get("filter", [""])[0])
            if not found:
                return (
                    400,
                    {},
                    {"errors": [{"status": 400, "code": "invalid", "detail": "unsupported filter"}]},
                )
            wanted = json.loads(f"[{found.group(1)}]")
            if len(wanted) > 100:
                return (
                    400,
                    {},
                    {"errors": [{"status": 400, "code": "invalid", "detail": "at most 100 values"}]},
                )
            data = [
                {"type": "profile", "id": f"kl-{e}", "attributes": {"external_id": e}}
                for e in wanted
                if e in self.profiles
            ]
            return 200, {}, {"data": data, "links": {"next": None}}
        match = re.fullmatch(r"/api/lists/([^/]+)/relationships/profiles", url.path)
        if seen.method == "DELETE" and match:
            ids = [d["id"].removeprefix("kl-") for d in seen.json["data"]]
            if self._fault(ids):
                return 503, {}, {"errors": [{"status": 503, "code": "error", "detail": "unavailable"}]}
            for e in ids:
                self._apply(f"unlist:{e}:{len(self.requests)}", lambda e=e: self.members.discard(e))
            return 204, {}, b""
        return 404, {}, {"errors": [{"status": 404, "code": "not_found", "detail": seen.path}]}

    # Braze: POST /users/track, up to 75 attribute and 75 event objects
    def _braze(self, seen: Seen):
        if seen.method != "POST" or urlparse(seen.path).path != "/users/track":
            return 404, {}, {"message": "not found"}
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"message": "Invalid API key"}
        body = seen.json
        attributes, events = body.get("attributes", []), body.get("events", [])
        if len(attributes) > 75 or len(events) > 75:
            return 400, {}, {"message": "Too many objects in one request (max 75 per array)"}
        ids = [o["external_id"] for o in attributes + events]
        status = self._fault(ids)
        if status:
            return status, {}, {"message": "injected failure"}
        errors = []
        for array, objects in (("attributes", attributes), ("events", events)):
            for i, o in enumerate(objects):
                e = o["external_id"]
                if e in self.bad_rows:
                    errors.append({"type": self.bad_rows[e], "input_array": array, "index": i})
                    continue
                key = f"{array}:{json.dumps(o, sort_keys=True)}"
                if array == "events":
                    self._apply(key, lambda o=o: self.events.append(o))
                else:
                    self._apply(key, lambda o=o, e=e: self._braze_attributes(e, o))
        answer = {
            "message": "success",
            "attributes_processed": len(attributes),
            "events_processed": len(events),
        }
        if errors:
            answer["errors"] = errors
        return 201, {}, answer

    def _braze_attributes(self, external_id: str, attributes: dict) -> None:
        profile = self.profiles.setdefault(external_id, {})
        for k, v in attributes.items():
            if isinstance(v, dict) and ("add" in v or "remove" in v):
                values = set(profile.get(k, []))
                values |= set(v.get("add", []))
                values -= set(v.get("remove", []))
                profile[k] = sorted(values)
            else:
                profile[k] = v
        if profile.get("pulse_audiences"):
            self.members.add(external_id)
        else:
            self.members.discard(external_id)

    # -- what tests assert -----------------------------------------------------------------------------
    def request_text(self) -> str:
        """Every request line and body received, for 'never sent' assertions."""
        return "\n".join(f"{s.method} {s.path}\n{s.body.decode(errors='replace')}" for s in self.requests)


def _from_track(row: dict) -> dict:
    """A webhook row in `events` mode is a Segment track call: read it as the operation it stands for."""
    if row.get("type") != "track":
        return row
    operation = "remove" if row["event"] == "Audience Exited" else "add"
    return {
        "operation": operation,
        "customer_id": row["userId"],
        "idempotency_key": row["messageId"],
        "track": row,
    }


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- warehouse side: an audience as `pulse audiences` leaves it ---------------------------------------------
def set_audience(settings, audience: str, treatment: list[str], holdout: list[str] = ()) -> None:
    """Make audiences.audience_members / audience_inputs hold exactly these members of `audience`
    (email_sha256 of `<id>@example.com`, a score per member)."""
    import sqlalchemy as sa

    from pulse.db import engine

    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "create table if not exists audiences.audience_members (audience_name text, customer_id text, "
                '"group" text, score double precision, member_rank bigint, as_of timestamptz, recommended_category text)'
            )
        )
        conn.execute(
            sa.text(
                "create table if not exists audiences.audience_inputs (customer_id text primary key, email_sha256 text, "
                "rfm_segment text)"
            )
        )
        conn.execute(
            sa.text("delete from audiences.audience_members where audience_name = :a"), {"a": audience}
        )
        rows = [(c, "treatment") for c in treatment] + [(c, "holdout") for c in holdout]
        conn.execute(
            sa.text("insert into audiences.audience_members values (:a, :c, :g, :s, :r, now(), 'shoes')"),
            [
                {"a": audience, "c": c, "g": g, "s": 1.0 / (i + 1), "r": i + 1}
                for i, (c, g) in enumerate(rows)
            ],
        )
        conn.execute(
            sa.text(
                "insert into audiences.audience_inputs values (:c, :e, 'champions') on conflict do nothing"
            ),
            [{"c": c, "e": sha(f"{c}@example.com")} for c, _ in rows],
        )


def set_consent(settings, rows: list[tuple[str, str, bool]]) -> None:
    """marts.customer_consent as dbt builds it: (customer_id, category, is_granted)."""
    import sqlalchemy as sa

    from pulse.db import engine

    with engine(settings).begin() as conn:
        conn.execute(sa.text("create schema if not exists marts"))
        conn.execute(
            sa.text(
                "create table if not exists marts.customer_consent (customer_id text, category text, "
                "is_granted boolean, consented_at timestamptz)"
            )
        )
        conn.execute(sa.text("delete from marts.customer_consent"))
        conn.execute(
            sa.text("insert into marts.customer_consent values (:c, :k, :g, now())"),
            [{"c": c, "k": k, "g": g} for c, k, g in rows],
        )


def run_log(settings, run_id: str) -> dict:
    import sqlalchemy as sa

    from pulse.db import engine

    with engine(settings).connect() as conn:
        run = dict(
            conn.execute(sa.text("select * from activation.sync_runs where run_id = :r"), {"r": run_id})
            .mappings()
            .one()
        )
        run["records"] = dict(
            conn.execute(
                sa.text("select status, count(*) from activation.sync_records where run_id = :r group by 1"),
                {"r": run_id},
            ).all()
        )
    return run
