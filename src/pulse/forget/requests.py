"""A forget request from start to end: the DAG's steps share it by id (`open_request`, `pending`), the
CLI runs it in one call (`forget`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import create_schemas, engine
from pulse.forget.files import forget_files
from pulse.forget.identities import ForgetError, Identities, check_unambiguous, resolve
from pulse.forget.online import forget_online_store
from pulse.forget.verify import record_audit, verify
from pulse.forget.warehouse import forget_warehouse


def open_request(
    request_id: str,
    customer_id: str | None = None,
    email: str | None = None,
    confirm_multiple: bool = False,
    settings: Settings | None = None,
) -> dict[str, int]:
    """Resolve a request and keep its identifiers in `audit.forget_pending` under `request_id`, for the
    steps that follow (the DAG passes them only the id). A request resolved before keeps its identifiers
    (a re-run after the deletion would find fewer). Returns counts only."""
    settings = settings or get_settings()
    create_schemas(settings)
    with engine(settings).connect() as conn:
        kept = conn.execute(
            sa.text("select identities from audit.forget_pending where request_id = :r"), {"r": request_id}
        ).scalar()
    if kept is not None:
        return Identities.from_dict(kept).counts()
    identities = resolve(customer_id, email, settings)
    check_unambiguous(identities, confirm_multiple)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit.forget_pending (request_id, identities) values (:r, cast(:i as jsonb)) "
                "on conflict (request_id) do nothing"
            ),
            {"r": request_id, "i": json.dumps(identities.to_dict())},
        )
    return identities.counts()


def pending(request_id: str, settings: Settings | None = None) -> Identities:
    """The identifiers of a request opened with `open_request` and not yet verified."""
    with engine(settings or get_settings()).connect() as conn:
        kept = conn.execute(
            sa.text("select identities from audit.forget_pending where request_id = :r"), {"r": request_id}
        ).scalar()
    if kept is None:
        raise ForgetError(f"no open forget request {request_id!r}: run its first step (resolve) again")
    return Identities.from_dict(kept)


@dataclass
class ForgetResult:
    request_id: str
    identities: Identities
    deleted_rows: dict[str, int]
    online_keys: int
    files: dict[str, int]


def forget(
    customer_id: str | None = None,
    email: str | None = None,
    settings: Settings | None = None,
    request_id: str | None = None,
    status: Callable[[str], AbstractContextManager] = lambda _: nullcontext(),
    confirm_multiple: bool = False,
) -> ForgetResult:
    """The whole request in one call (`pulse forget`): resolve, delete everywhere, audit, verify.

    `status(what)` wraps each step (the CLI passes a spinner). An email several customers used raises
    AmbiguousSubjectError unless `confirm_multiple`."""
    settings = settings or get_settings()
    request_id = request_id or f"cli-{uuid.uuid4()}"
    with status("finding their ids"):
        identities = resolve(customer_id, email, settings)
    check_unambiguous(identities, confirm_multiple)
    with status("deleting from the warehouse"):
        deleted = forget_warehouse(identities, settings)
    with status("deleting from the online store"):
        online = forget_online_store(identities, settings)
    with status("removing them from exports and landed files"):
        files = forget_files(identities, settings)
    record_audit(request_id, identities, deleted, online, files, settings)
    with status("checking that nothing is left"):
        verify(request_id, identities, settings)
    return ForgetResult(request_id, identities, deleted, online, files)
