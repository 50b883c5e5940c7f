"""Who may do what on `pulse serve`: the write key (public, per source) and the read key (secret).

- The write key only lets a client *add* events, so it may sit in a web page (HTTP basic auth user, or
  `writeKey` in the body, as Segment's libraries send it).
- The read key (`PULSE_READ_KEY`, `Authorization: Bearer ...`) lets a caller read scores about people;
  it is a server-side secret.
- An empty key never authenticates, configured or presented.
- On an address other than loopback the server refuses to start with the development write key, an
  empty one, or no read key (`unsafe_to_serve`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from pulse.config import DEFAULT_WRITE_KEY, Settings


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing key (either side) never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def basic_user(header: str | None) -> str | None:
    """The user name of an HTTP basic `Authorization` header (where Segment puts the write key)."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def bearer_token(header: str | None) -> str | None:
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: could resolve to anything


def unsafe_to_serve(host: str, settings: Settings) -> list[str]:
    """Why serving on `host` with these settings would expose data or accept anyone's events (empty: safe)."""
    if is_loopback(host):
        return []
    reasons = []
    if not settings.write_key.strip():
        reasons.append("PULSE_WRITE_KEY is empty")
    elif settings.write_key == DEFAULT_WRITE_KEY:
        reasons.append(f"PULSE_WRITE_KEY is the development default ({DEFAULT_WRITE_KEY!r})")
    if not (settings.read_key or "").strip():
        reasons.append("PULSE_READ_KEY is not set (the scoring API needs a secret bearer token)")
    return reasons


class UnsafeToServe(Exception):
    """Serving on this address with these settings would expose scores or accept anyone's events."""


def check_safe_to_serve(host: str, settings: Settings) -> None:
    if reasons := unsafe_to_serve(host, settings):
        raise UnsafeToServe(
            f"refusing to serve on {host}: " + "; ".join(reasons) + ". Set real keys in the environment "
            "(or .env), or listen on 127.0.0.1."
        )
