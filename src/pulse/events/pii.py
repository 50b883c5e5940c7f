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
- inside any other string (free text, URLs), in place: email addresses (also percent-encoded, `a%40b.com`),
  the values of email- or phone-named URL parameters (`?email=...&phone=...`) and international phone
  numbers (`+44 20 7946 0018`, `tel:` links) each become `sha256:<hex>` of the normalised value;
- rejected payloads (`redact_text`): the same, plus the values of email- or phone-named keys, so
  `raw.events_rejected` holds no plaintext either;
- `context.ip` is truncated to its network (IPv4 /24, IPv6 /48) unless `PULSE_KEEP_FULL_IP` is set.

Every scan here is linear in the text (regular expressions anchored so that no position is retried from
far away, bounded repetitions): a 32 KB event full of addresses scrubs in a few milliseconds.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
# Finding addresses inside text in linear time: a match may only start where a run of local-part
# characters starts (the lookbehind), and every part is bounded, so no position is retried from far away.
_LOCAL = r"A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_DOMAIN = r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
_EMAIL_SCAN_RE = re.compile(rf"(?<![{_LOCAL}])[{_LOCAL}]{{1,64}}@{_DOMAIN}")
_ENCODED_EMAIL_SCAN_RE = re.compile(rf"(?<![{_LOCAL}])[{_LOCAL}]{{1,64}}%40{_DOMAIN}", re.IGNORECASE)
# URL parameters named like an email or a phone: `?email=...`, `&phone_number=...`.
_URL_PARAM_RE = re.compile(
    r"(?i)([?&;](?:e[-_]?mail(?:[-_]?address)?|user[-_]?email|phone(?:[-_]?number)?|mobile(?:[-_]?(?:phone|number))?"
    r"|tel(?:ephone)?|cell[-_]?phone)=)([^&#\s\"'<>]{1,320})"
)
# International numbers in text (`+44 20 7946 0018`, `tel:+1-415-555-0100`) and `tel:` links; a bare
# run of digits is an order number as often as a phone, so it is left alone.
_PHONE_SCAN_RE = re.compile(r"(?<![\w+])\+\d[\d ().-]{6,20}\d(?!\d)|(?i:(?<=tel:))[\d ().-]{6,20}\d(?!\d)")
# Anything `_hash_in_text` could change contains one of these.
_TEXT_HINT_RE = re.compile(r"@|%40|\+\d|=|(?i:tel:)")

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


_INTERNATIONAL_RE = re.compile(r"\+[\d ().-]{7,24}")


@lru_cache(maxsize=65536)
def normalise_phone(value: str, region: str | None = None) -> str:
    """E.164 (`+14155550123`). Unparseable input falls back to `+` and its digits, still only hashed."""
    text = value.strip()
    if text.startswith("+") and "(0" not in text and _INTERNATIONAL_RE.fullmatch(text):
        # Already international: E.164 is `+` and the digits (checked against phonenumbers for every
        # region's example number), at a fraction of the cost of parsing; "(0)" trunk prefixes are not.
        return "+" + re.sub(r"\D", "", text)
    import phonenumbers  # imported on first use: its metadata is large

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


def scrub_text(value: str) -> str:
    """A string value: `sha256:<hex>` if it is an address, else its addresses and numbers hashed in place."""
    if is_email(value):
        return "sha256:" + hash_email(value)
    if _TEXT_HINT_RE.search(value) is None:
        return value
    return _hash_in_text(value)


def _hashed_param(match: re.Match[str]) -> str:
    from urllib.parse import unquote_plus

    name, value = match.group(1), match.group(2)
    if value.startswith("sha256:"):
        return match.group(0)
    kind = "phone" if re.search(r"(?i)phone|mobile|tel", name) else "email"
    return f"{name}sha256:{_HASHERS[kind](unquote_plus(value))}"


def _hashed_email(match: re.Match[str]) -> str:
    return "sha256:" + hash_email(match.group(0))


def _hashed_encoded_email(match: re.Match[str]) -> str:
    from urllib.parse import unquote

    return "sha256:" + hash_email(unquote(match.group(0)))


def _hashed_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    e164 = normalise_phone(text if text[0] == "+" else "+" + text)
    if not 9 <= len(e164) <= 16:  # `+` and 8 to 15 digits (E.164 allows at most 15)
        return text
    return "sha256:" + sha256(e164)


def _hash_in_text(text: str) -> str:
    """Emails (plain and percent-encoded), PII-named URL parameters and international phone numbers in
    `text`, each replaced in place by `sha256:<hex>` of its normalised value. Linear in `len(text)`."""
    if "=" in text:
        text = _URL_PARAM_RE.sub(_hashed_param, text)
    if "@" in text:
        text = _EMAIL_SCAN_RE.sub(_hashed_email, text)
    if "%40" in text or "%40".upper() in text:
        text = _ENCODED_EMAIL_SCAN_RE.sub(_hashed_encoded_email, text)
    if "+" in text or "tel:" in text.lower():
        text = _PHONE_SCAN_RE.sub(_hashed_phone, text)
    return text


@lru_cache(maxsize=1)
def keep_full_ip() -> bool:
    """`PULSE_KEEP_FULL_IP` from the settings, read once per process."""
    from pulse.config import get_settings

    return get_settings().keep_full_ip


@lru_cache(maxsize=65536)
def truncate_ip(value: str) -> str | None:
    """The network of an address: IPv4 /24 (`203.0.113.0`), IPv6 /48; None for what is not an address."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def without_full_ip(context: dict[str, Any]) -> dict[str, Any]:
    """`context` with `ip` truncated (a new dict; the argument is not changed), unless configured not to."""
    ip = context.get("ip")
    if ip is None or keep_full_ip():
        return context
    return {**context, "ip": truncate_ip(ip) if isinstance(ip, str) else None}


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


def scrub(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace plaintext email/phone keys (at any depth) with `*_sha256` hashes, and hash the addresses
    and numbers in every other string value (`scrub_text`)."""
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
    """False when the raw text certainly holds no email or phone: skip scrubbing.

    Runs on every event, so it is a few C-speed scans: an `@` (or `%40`), something like an international
    number, a PII-named URL parameter or a `tel:` link, or a key word inside an object key. For a key
    word it finds the next quote after the hit: a key's closing quote is followed by a colon
    (`"type": "mobile"` is a value, not a key). Every other hit before that quote has the same answer,
    so the search goes on after it: linear, however many times the word repeats."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if b"@" in data:
        return True
    low = data.lower()
    if (b"%" in low and b"%40" in low) or (b"+" in low and _NUMBER_RE.search(low) is not None):
        return True
    has_equals = b"=" in low
    for word, parameter in _KEY_WORDS:
        at = low.find(word)
        if at < 0:
            continue
        # A PII-named URL parameter (`?email=`, `phone_number=`) or a `tel:` link. One literal-led
        # pattern per word, searched only where the word occurs: an alternation of them all is not
        # literal-led, so `re` would try every branch at every offset (13 us for a 600-byte event).
        if (has_equals or word == b"tel") and parameter.search(low, at) is not None:
            return True
        while at >= 0:
            quote = low.find(b'"', at)
            if quote < 0:
                break
            if low[quote - 1] == 0x5C or _AFTER_KEY_RE.match(low, quote + 1) is not None:
                return True  # a key (or an escaped quote: cannot tell cheaply, so maybe)
            at = low.find(word, quote + 1)
    return False


# Every key `_key_kind` matches contains one of these words (`emailAddress`, `phone_number`, `telephone`),
# each with the pattern of a URL parameter named after it (and for `tel`, a `tel:` link).
_KEY_WORDS = tuple(
    (word, re.compile(re.escape(word) + rb"(?:[a-z_-]{0,16}=" + (rb"|:)" if word == b"tel" else rb")")))
    for word in (b"mail", b"phone", b"mobile", b"tel")
)
_AFTER_KEY_RE = re.compile(rb"[ \t\r\n]*:")
_NUMBER_RE = re.compile(rb"\+\d[\d ().-]{6,20}\d")  # something like an international phone number


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

    return _hash_in_text(_PII_KEY_TEXT_RE.sub(key_value, text))
