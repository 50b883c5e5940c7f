"""Fitted models are pickles, and unpickling runs code: a model row is only loaded when its HMAC says
Pulse's trainer wrote it. The key is `PULSE_MODEL_SIGNING_KEY`; without it (a local setup) a random key
is generated once into `PULSE_HOME/model_signing.key`, readable by its owner only, and shared by every
Pulse process using that home. `PULSE_MODEL_SIGNING_KEY_PREVIOUS` still verifies models signed before a
rotation, until they are retrained."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pulse.config import Settings

KEY_FILE = "model_signing.key"
_DOMAIN = b"pulse-model-artifact-v1"


class ModelSignatureError(RuntimeError):
    """A stored model is unsigned or its signature does not match: it is not loaded."""


def _key_file(settings: Settings) -> bytes:
    path = settings.home_dir / KEY_FILE
    if not path.exists():
        # Write aside, then link into place: two processes starting at once agree on one key.
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink()
    return path.read_text().strip().encode()


def signing_key(settings: Settings) -> bytes:
    if settings.model_signing_key is not None:
        key = settings.model_signing_key.get_secret_value().encode()
        if len(key) < 32:
            raise ModelSignatureError("PULSE_MODEL_SIGNING_KEY must be at least 32 characters")
        return key
    return _key_file(settings)


def _mac(key: bytes, run_id: str, model_name: str, artifact: bytes) -> str:
    # The run and task are signed with the bytes, so a signed model cannot be moved to another row.
    message = b"\0".join([_DOMAIN, run_id.encode(), model_name.encode(), hashlib.sha256(artifact).digest()])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(run_id: str, model_name: str, artifact: bytes, settings: Settings) -> str:
    return _mac(signing_key(settings), run_id, model_name, artifact)


def verify(run_id: str, model_name: str, artifact: bytes, signature: str | None, settings: Settings) -> None:
    """Raise ModelSignatureError unless `signature` is this artefact's, under the current or previous key."""
    if not signature:
        raise ModelSignatureError(
            f"model run {run_id!r} ({model_name}) has no signature: refusing to load it; "
            "retrain with `pulse train` to store a signed model"
        )
    keys = [signing_key(settings)]
    if settings.model_signing_key_previous is not None:
        keys.append(settings.model_signing_key_previous.get_secret_value().encode())
    if not any(hmac.compare_digest(_mac(key, run_id, model_name, artifact), signature) for key in keys):
        raise ModelSignatureError(
            f"model run {run_id!r} ({model_name}) does not match its signature: it was altered or signed "
            "with another key (PULSE_MODEL_SIGNING_KEY); refusing to load it"
        )
