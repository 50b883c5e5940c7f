"""PII never reaches a table in plain text: emails and phones are normalised, then SHA-256 hashed.

Normalised as the ad platforms expect before matching (trim + lowercase for email, E.164-style digits for
phone), so the hashes Pulse exports match the ones Google, Meta and TikTok compute.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

PII_KEYS = {"email": "email_sha256", "phone": "phone_sha256"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_email(value: str) -> str:
    return value.strip().lower()


def normalise_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"+{digits}" if digits else ""


def hash_email(value: str) -> str:
    return sha256(normalise_email(value))


def hash_phone(value: str) -> str:
    return sha256(normalise_phone(value))


_HASHERS = {"email": hash_email, "phone": hash_phone}


def scrub(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace plaintext email/phone keys (at any depth) with their `*_sha256` hashes."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        lowered = key.lower()
        if lowered in _HASHERS and isinstance(value, str | int):
            text = str(value)
            if text.strip():
                out[PII_KEYS[lowered]] = _HASHERS[lowered](text)
        elif isinstance(value, dict):
            out[key] = scrub(value)
        else:
            out[key] = value
    return out
