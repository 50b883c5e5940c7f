"""PII never reaches a table in plain text: emails and phones are normalised, then SHA-256 hashed.

Normalised as the ad platforms expect before matching (Google Customer Match, Meta and TikTok custom
audiences): email trimmed and lowercased; phone in E.164 (`+` country code, national number, no
punctuation), parsed with `phonenumbers` using a default region for numbers written without a country
code. The hashes Pulse exports are therefore the ones those platforms compute.

What is hashed:
- any key named like an email or a phone (`email`, `Email`, `email_address`, `phone`, `phone_number`,
  `mobile`, ...) at any depth of `traits`, `properties` or `context`, replaced by `email_sha256` /
  `phone_sha256`;
- any other string value that *is* an email address (a `contact` field, a `userId` that is an email),
  replaced by `sha256:<hex>` of the normalised address, so it still joins with itself;
- rejected payloads (`redact_text`): email addresses anywhere in the text, and the values of email- or
  phone-named keys, so `raw.events_rejected` holds no plaintext either.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any

PII_KEYS = {"email": "email_sha256", "phone": "phone_sha256"}

# Key spellings that hold an email or a phone, compared after lowercasing and removing non-alphanumerics.
EMAIL_KEYS = frozenset({"email", "emailaddress", "mail", "useremail"})
PHONE_KEYS = frozenset(
    {"phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "tel", "telephone", "cellphone"}
)


@lru_cache(maxsize=1)
def default_phone_region() -> str:
    """`PULSE_PHONE_REGION` from the settings object (environment or `.env`), read once per process."""
    from pulse.config import get_settings

    return get_settings().phone_region


EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_EMAIL_FULL_RE = re.compile(r"\s*" + EMAIL_RE.pattern + r"\s*")
# In raw text (a rejected payload): "email": "...", 'phone_number' : 12345, email=... and so on.
_PII_KEY_TEXT_RE = re.compile(
    r"""(?ix)
    ((?<![\w-])["']?(?:e[-_]?mail(?:[-_]?address)?|user[-_]?email|mail|phone(?:[-_]?number)?|mobile(?:[-_]?(?:phone|number))?
        |tel(?:ephone)?|cell[-_]?phone)["']?\s*[:=]\s*)
    ("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}\]\s&]+)
    """
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def normalise_email(value: str) -> str:
    return value.strip().lower()


@lru_cache(maxsize=65536)
def normalise_phone(value: str, region: str | None = None) -> str:
    """E.164 (`+14155550123`). Unparseable input falls back to `+` and its digits, still only hashed."""
    import phonenumbers  # imported on first use: its metadata is large

    text = value.strip()
    try:
        parsed = phonenumbers.parse(text, region or default_phone_region())
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    return f"+{digits}" if digits else ""


def hash_email(value: str) -> str:
    return sha256(normalise_email(value))


def hash_phone(value: str) -> str:
    return sha256(normalise_phone(str(value)))


def _key_kind(key: str) -> str | None:
    folded = re.sub(r"[^0-9a-z]", "", key.lower())
    if folded in EMAIL_KEYS:
        return "email"
    if folded in PHONE_KEYS:
        return "phone"
    return None


_HASHERS = {"email": hash_email, "phone": hash_phone}


def is_email(value: str) -> bool:
    return "@" in value and len(value) <= 330 and _EMAIL_FULL_RE.fullmatch(value) is not None


def hash_if_email(value: str | None) -> str | None:
    """An id or value that is an email address is stored as `sha256:<hex>` of the normalised address."""
    if value is not None and is_email(value):
        return "sha256:" + hash_email(value)
    return value


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return hash_if_email(value)
    if isinstance(value, dict):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


def scrub(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace plaintext email/phone keys (at any depth) with `*_sha256` hashes, and hash any other
    string value that is an email address."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        kind = _key_kind(key) if isinstance(key, str) else None
        if kind is not None and not isinstance(value, dict | list):
            if value is None or isinstance(value, bool):
                continue  # nothing to hash; dropping the key keeps the column free of PII-named fields
            text = str(value)
            if text.strip():
                out[PII_KEYS[kind]] = _HASHERS[kind](text)
        else:
            out[key] = _scrub_value(value)
    return out


def maybe_pii(raw: bytes | str) -> bool:
    """False when the raw text certainly holds no email or phone (no `@`, no such key): skip scrubbing.

    Runs on every event of a bulk load, so it looks for each key word with `bytes.find` (memchr fast)
    and only checks the text after a hit: is the word inside an object key (`"..word..": `)?
    `"type": "mobile"` is a value, not a key."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if b"@" in data:
        return True
    low = data.lower()
    for word in _KEY_WORDS:
        at = low.find(word)
        while at >= 0:
            if _REST_OF_KEY_RE.match(low, at + len(word)) is not None:
                return True
            at = low.find(word, at + 1)
    return False


# Every key `_key_kind` matches contains one of these words (`emailAddress`, `phone_number`, `telephone`).
_KEY_WORDS = (b"mail", b"phone", b"mobile", b"tel")
# After the word: more key characters, the closing quote, blanks, the colon.
_REST_OF_KEY_RE = re.compile(rb'[^",:{}\[\]\\]*"[ \t\r\n]*:')


def redact_text(text: str) -> str:
    """Hash the PII in free text (a payload that could not be parsed, or failed validation)."""
    if not maybe_pii(text):
        return text

    def key_value(match: re.Match[str]) -> str:
        prefix, value = match.group(1), match.group(2)
        inner = value[1:-1] if value[:1] in "\"'" and len(value) >= 2 else value
        kind = "email" if "mail" in prefix.lower() else "phone"
        if not inner.strip() or inner.lower() in {"null", "true", "false"} or inner.startswith("sha256:"):
            return match.group(0)
        return f'{prefix}"sha256:{_HASHERS[kind](inner)}"'

    text = _PII_KEY_TEXT_RE.sub(key_value, text)
    return _redact_emails(text)


_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-")
_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def _redact_emails(text: str) -> str:
    """Hash every email address in `text`, in linear time: `EMAIL_RE.sub` is quadratic on long runs of
    word characters (a 500 KB padding string would take minutes), so scan from each `@` instead."""
    out, last, at = [], 0, text.find("@")
    while at != -1:
        start = at
        while start > last and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        end = at + 1
        while end < len(text) and end - at <= 255 and text[end] in _DOMAIN_CHARS:
            end += 1
        candidate = text[start:end].rstrip(".-")
        if start < at and EMAIL_RE.fullmatch(candidate):
            out += [text[last:start], "sha256:", hash_email(candidate)]
            last = start + len(candidate)
        at = text.find("@", max(at + 1, last))
    out.append(text[last:])
    return "".join(out)
