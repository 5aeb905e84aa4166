"""The image captcha role: single-use challenges that expire.

``ImageCaptcha`` draws a distorted image with the ``captcha`` package; ``NoCaptcha`` is the
switched-off form (``IDP_CAPTCHA=off``, refused in production). The answer lives only in the
ephemeral store and is deleted by the first check, right or wrong.
"""

from __future__ import annotations

import hmac
import secrets

_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L look-alikes
_KEY = "captcha:"


class ImageCaptcha:
    enabled = True

    def __init__(self, store, ttl: int, length: int = 4) -> None:
        from captcha.image import ImageCaptcha as Drawer

        self.store = store
        self.ttl = ttl
        self.length = length
        self.drawer = Drawer(width=140, height=48, font_sizes=(36, 40, 44))

    def issue(self) -> tuple[str, bytes]:
        """A new challenge: its id (kept in the session) and the PNG to show."""
        answer = "".join(secrets.choice(_ALPHABET) for _ in range(self.length))
        challenge_id = secrets.token_urlsafe(16)
        self.store.set(_KEY + challenge_id, answer.encode(), self.ttl)
        return challenge_id, self.drawer.generate(answer, format="png").getvalue()

    def check(self, challenge_id: str | None, answer: str | None) -> bool:
        if not challenge_id or not answer:
            return False
        expected = self.store.pop(_KEY + challenge_id)
        if expected is None:
            return False
        given = answer.strip().upper().encode()
        return hmac.compare_digest(expected, given)

    def peek(self, challenge_id: str) -> str | None:
        """The answer without using it: for the test suite and the dev tools only."""
        value = self.store.get(_KEY + challenge_id)
        return value.decode() if value else None


class NoCaptcha:
    enabled = False

    def issue(self) -> tuple[str, bytes]:
        raise LookupError("captcha is switched off")

    def check(self, challenge_id, answer) -> bool:
        return True


def create_captcha(config: dict, store):
    if config["CAPTCHA"] == "off":
        return NoCaptcha()
    return ImageCaptcha(store, config["CAPTCHA_TTL"])
