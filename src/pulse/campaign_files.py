"""The YAML files a marketer edits under `campaigns/` (audiences, syncs, triggers): each file one
definition, validated by its pydantic model, names unique within a folder."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ValidationError

# A definition is a few dozen lines: a bigger file is a mistake, or an attempt to exhaust the parser.
MAX_FILE_BYTES = 64 * 1024


Definition = TypeVar("Definition", bound=BaseModel)


def load_folder(
    folder: Path,
    model: type[Definition],
    error: type[Exception],
    kind: str,
    also_invalid: tuple[type[Exception], ...] = (),
) -> list[Definition]:
    """Every `*.yml` / `*.yaml` file of `folder` as a `model`, sorted by file name. A file too large, not
    YAML or not valid raises `error` naming the file; so do two definitions with the same name.
    `also_invalid`: more exception types the model's validators raise for a bad file."""
    definitions = []
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        if path.stat().st_size > MAX_FILE_BYTES:
            raise error(f"{path}: larger than {MAX_FILE_BYTES // 1024} KB")
        try:
            definitions.append(model.model_validate(yaml.safe_load(path.read_text())))
        except (ValidationError, yaml.YAMLError, *also_invalid) as invalid:
            raise error(f"{path}: {invalid}") from invalid
    names = [getattr(d, "name") for d in definitions]  # noqa: B009 (each model has a name; mypy knows BaseModel)
    if len(set(names)) != len(names):
        raise error(f"{kind} names must be unique: {names}")
    return definitions


def store_definitions(
    conn: sa.Connection, table: str, key: str, rows: Sequence[Mapping[str, Any]], jsonb: Collection[str] = ()
) -> None:
    """Make `table` hold exactly `rows` (keyed by `key`), each stamped with `synced_at`: delete the others,
    insert new ones, update changed ones. An unchanged row keeps its `synced_at`, and columns not given (a
    trigger's status) are kept, so loading the same files twice leaves the table identical. `jsonb`: columns
    given as Python values and stored as JSON. `table` and the column names come from code, never a file."""
    conn.execute(
        sa.text(f"delete from {table} where not ({key} = any(:names))"), {"names": [r[key] for r in rows]}
    )
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    values = ", ".join(f"cast(:{c} as jsonb)" if c in jsonb else f":{c}" for c in (key, *columns))
    own, now = table.rsplit(".", 1)[-1], datetime.now(UTC)
    conn.execute(
        sa.text(
            f"insert into {table} ({key}, {', '.join(columns)}, synced_at) values ({values}, :synced_at) "
            f"on conflict ({key}) do update set "
            + ", ".join(f"{c} = excluded.{c}" for c in (*columns, "synced_at"))
            + f" where ({', '.join(f'{own}.{c}' for c in columns)})"
            f" is distinct from ({', '.join(f'excluded.{c}' for c in columns)})"
        ),
        [
            {c: json.dumps(v, sort_keys=True) if c in jsonb else v for c, v in r.items()} | {"synced_at": now}
            for r in rows
        ],
    )
