"""The suppression list, `raw.forgotten_subjects`: a forgotten person's later events are rejected at every
load (reason `forgotten_subject`, pulse.events.load)."""

from __future__ import annotations

import sqlalchemy as sa

from pulse.events.pii import sha256
from pulse.forget.identities import Identities


def suppress(conn, identities: Identities) -> None:
    """Put the person on the suppression list: SHA-256s of their ids and of their email hashes (hashed
    again, so the list holds no value the warehouse stores anywhere else)."""
    rows = [{"h": sha256(i), "k": "id"} for i in identities.all_ids]
    rows += [{"h": sha256(h), "k": "email"} for h in identities.email_hashes]
    if rows:
        conn.execute(
            sa.text(
                "insert into raw.forgotten_subjects (subject_sha256, kind) values (:h, :k) "
                "on conflict do nothing"
            ),
            rows,
        )
