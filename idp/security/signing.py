"""Signatures on requests to outside HTTP services (INTERFACES.md, "Outside services"), and on
the real-name verifier's answers (docs/verification.md).

``X-IDP-Signature`` is hex HMAC-SHA256 over ``timestamp + "." + body`` with the shared secret;
a request (or answer) more than five minutes from our clock is invalid.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_AGE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-IDP-Timestamp": str(timestamp),
        "X-IDP-Signature": signature(secret, timestamp, body),
    }


def verify(secret: str, timestamp: str, sig: str, body: bytes, now: float) -> bool:
    """The receiving side's check: the verifier's answers here, our requests at the services
    (and their test servers). Constant-time comparison."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sig or "")
