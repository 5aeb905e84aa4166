"""The captcha as a part of a form: the challenge id is kept in the session per purpose, so
forms post only the typed answer (field ``captcha``)."""

from __future__ import annotations

from flask import session

from idp.extensions import services

PURPOSES = ("login", "sms")


def _key(purpose: str) -> str:
    return f"captcha_{purpose}"


def new_image(purpose: str) -> bytes:
    challenge_id, png = services().captcha.issue()
    session[_key(purpose)] = challenge_id
    return png


def passes(purpose: str, answer: str | None) -> bool:
    """Checks and spends the challenge, right or wrong."""
    return services().captcha.check(session.pop(_key(purpose), None), answer)


def enabled() -> bool:
    return services().captcha.enabled
