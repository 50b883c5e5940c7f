"""Resolving a forget request to every identifier the person has in the warehouse (see `pulse.forget`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import create_schemas, engine
from pulse.events.pii import normalise_email, sha256

# How a user id that was an email address is stored (pulse.events.pii): this prefix and its SHA-256.
HASHED_ID_PREFIX = "sha256:"


class ForgetError(RuntimeError):
    """A request that cannot be carried out, or a check that found the customer's data still present."""


class AmbiguousSubjectError(ForgetError):
    """An email address that more than one customer used: forgetting all of them must be confirmed."""

    def __init__(self, customer_ids: list[str]) -> None:
        self.customer_ids = customer_ids
        super().__init__(
            f"this email address belongs to {len(customer_ids)} customers; forget all of them only if that "
            "is what the request asks (`pulse forget --email ... --yes`, or the DAG's `confirm_multiple`)"
        )


@dataclass
class Identities:
    """Everything that identifies one person in Pulse's data (passed between Airflow tasks as a dict)."""

    subject_kind: str
    subject_sha256: str
    customer_ids: list[str] = field(default_factory=list)
    anonymous_ids: list[str] = field(default_factory=list)
    email_hashes: list[str] = field(default_factory=list)
    # Customers the email itself matched (not through an alias or the hashed-email id): more than one
    # is an ambiguous request.
    matched_customers: list[str] = field(default_factory=list)

    @property
    def all_ids(self) -> list[str]:
        return sorted({*self.customer_ids, *self.anonymous_ids})

    @property
    def values(self) -> list[str]:
        """Every identifying string: ids and email hashes (what `verify` searches for)."""
        return sorted({*self.all_ids, *self.email_hashes})

    def counts(self) -> dict[str, int]:
        return {
            "customer_ids": len(self.customer_ids),
            "anonymous_ids": len(self.anonymous_ids),
            "email_hashes": len(self.email_hashes),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identities:
        return cls(**data)


# SQL: the email hashes a `raw.events` row holds, at any depth of its traits, context or properties: every
# `email_sha256` value, and every string that was an email address (`sha256:<hex>`, pulse.events.pii).
_EMAIL_HASHES_OF_EVENT = (
    "jsonb_path_query(jsonb_build_array(traits, context, properties), "
    "'strict $.** ? (@.type() == \"object\").email_sha256')"
)
_HASHED_STRINGS_OF_EVENT = (
    "jsonb_path_query(jsonb_build_array(traits, context, properties), "
    '\'strict $.** ? (@.type() == "string" && @ starts with "sha256:")\')'
)


def carries_email_hash(param: str) -> str:
    """SQL: a `raw.events` row that holds one of the hashes in `:param` (bare, and in the `sha256:` form)."""
    return (
        f"(exists (select 1 from {_EMAIL_HASHES_OF_EVENT} as h(v) where v #>> '{{}}' = any(:{param})) "
        f"or exists (select 1 from {_HASHED_STRINGS_OF_EVENT} as h(v) where v #>> '{{}}' = any(:{param})))"
    )


def hash_forms(hashes: Iterable[str]) -> list[str]:
    """Email hashes as events hold them: bare (`email_sha256`) and as a hashed value (`sha256:<hex>`)."""
    return sorted({form for h in hashes for form in (h, HASHED_ID_PREFIX + h)})


def table_exists(conn, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()


def resolve(
    customer_id: str | None = None, email: str | None = None, settings: Settings | None = None
) -> Identities:
    """Every id and email hash of the person named by `customer_id` or `email` (one of them)."""
    if bool(customer_id) == bool(email):
        raise ForgetError("name the customer to forget by exactly one of: a customer id, an email")
    settings = settings or get_settings()
    create_schemas(settings)
    email_hashes: set[str] = set()
    matched: set[str] = set()
    with engine(settings).connect() as conn:
        if email:
            hashed = sha256(normalise_email(email))
            email_hashes.add(hashed)
            matched = set(
                conn.execute(
                    sa.text(
                        "select distinct user_id from raw.events where user_id is not null "
                        f"and {carries_email_hash('h')}"
                    ),
                    {"h": hash_forms([hashed])},
                ).scalars()
            ) - {HASHED_ID_PREFIX + hashed}
            customers = {*matched, HASHED_ID_PREFIX + hashed}
            identities = Identities("email", hashed)
        else:
            assert customer_id  # one of the two, checked above
            customers = {customer_id}
            identities = Identities("customer_id", sha256(customer_id))
        # Ids, aliases and email hashes lead to one another (an email-as-id, `sha256:<hex>`, is an
        # email hash too): follow them until nothing new turns up.
        while True:
            customers |= _aliased(conn, customers)
            email_hashes |= _email_hashes_of(conn, customers)
            grown = customers | {HASHED_ID_PREFIX + h for h in email_hashes}
            email_hashes |= {
                c.removeprefix(HASHED_ID_PREFIX) for c in grown if c.startswith(HASHED_ID_PREFIX)
            }
            if grown == customers:
                break
            customers = grown
        anonymous = set(
            conn.execute(
                sa.text(
                    "select distinct anonymous_id from raw.events "
                    "where user_id = any(:c) and anonymous_id is not null"
                ),
                {"c": sorted(customers)},
            ).scalars()
        )
        if table_exists(conn, "marts.identity_graph"):
            anonymous |= set(
                conn.execute(
                    sa.text(
                        "select distinct anonymous_id from marts.identity_graph where customer_id = any(:c)"
                    ),
                    {"c": sorted(customers)},
                ).scalars()
            )
    identities.customer_ids = sorted(customers)
    identities.anonymous_ids = sorted(anonymous - customers)
    identities.email_hashes = sorted(email_hashes)
    identities.matched_customers = sorted(matched)
    return identities


def _email_hashes_of(conn, customers: set[str]) -> set[str]:
    """Every email hash the events of `customers` carry, at any depth."""
    found = conn.execute(
        sa.text(
            f"select v #>> '{{}}' from raw.events, {_EMAIL_HASHES_OF_EVENT} as h(v) "
            "where user_id = any(:c) and jsonb_typeof(v) = 'string' union "
            f"select v #>> '{{}}' from raw.events, {_HASHED_STRINGS_OF_EVENT} as h(v) where user_id = any(:c)"
        ),
        {"c": sorted(customers)},
    ).scalars()
    return {value.removeprefix(HASHED_ID_PREFIX) for value in found}


def check_unambiguous(identities: Identities, confirm_multiple: bool) -> None:
    """An email that several customers used is forgotten for all of them only when confirmed."""
    if len(identities.matched_customers) > 1 and not confirm_multiple:
        raise AmbiguousSubjectError(identities.matched_customers)


def _aliased(conn, ids: set[str]) -> set[str]:
    """The ids `alias` calls merged with `ids`, in either direction, transitively."""
    seen = set(ids)
    frontier = set(ids)
    while frontier:
        linked = set(
            conn.execute(
                sa.text(
                    "select previous_id from raw.events where event_type = 'alias' and user_id = any(:f) "
                    "and previous_id is not null union "
                    "select user_id from raw.events where event_type = 'alias' and previous_id = any(:f) "
                    "and user_id is not null"
                ),
                {"f": sorted(frontier)},
            ).scalars()
        )
        frontier = linked - seen
        seen |= linked
    return seen - set(ids)
