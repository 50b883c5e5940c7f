"""The YAML files a marketer edits under `campaigns/` (audiences, syncs, triggers): each file one
definition, validated by its pydantic model, names unique within a folder."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

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
