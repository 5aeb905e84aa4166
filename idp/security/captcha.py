"""The captcha as a part of a form: the challenge id is kept in the session per purpose, so
forms post only the typed answer (field ``captcha``).

Images are limited per client address (``CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE``): drawing one
costs CPU and a stored challenge, and an unlimited endpoint lets a script farm challenges.
Every failed check is announced (``captcha_failed``) so the audit log shows guessing.
"""

from __future__ import annotations

from flask import current_app, session
from werkzeug.exceptions import TooManyRequests

from idp import signals
from idp.audit import client_address
from idp.extensions import services
from idp.security.ratelimit import Limit

# staff: the console's sign-in (/admin/login); recovery: 检索登录名 / 检索单位名称 (idp.recovery);
# lookup: /account-lookup (idp.legacy)
PURPOSES = ("login", "sms", "staff", "recovery", "lookup")
MINUTE = 60


class CaptchaThrottled(TooManyRequests):
    """Too many images for one client address; ``retry_after`` in seconds.

    An HTTP 429 as well, so that a caller that does not catch it still answers 429 (through
    the error pages) rather than 500."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


def _key(purpose: str) -> str:
    return f"captcha_{purpose}"


def _images_per_address() -> Limit:
    return Limit("captcha_address", current_app.config["CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE"], MINUTE)


def new_image(purpose: str, address: str | None = None) -> bytes:
    """A new challenge for ``purpose`` (replacing the previous one); raises CaptchaThrottled
    when ``address`` (default: the caller's) has fetched too many images this minute."""
    address = address or client_address() or "-"
    limit = _images_per_address()
    if limit.exceeded(address):
        raise CaptchaThrottled(limit.retry_after(address))
    limit.hit(address)
    challenge_id, png = services().captcha.issue()
    session[_key(purpose)] = challenge_id
    return png


def passes(purpose: str, answer: str | None) -> bool:
    """Checks and spends the challenge, right or wrong; a failure is announced."""
    challenge_id = session.pop(_key(purpose), None)
    ok = services().captcha.check(challenge_id, answer)
    if not ok:
        reason = "no_challenge" if not challenge_id else "no_answer" if not answer else "wrong_or_expired"
        signals.captcha_failed.send(
            current_app._get_current_object(), subject=purpose, outcome="failure",
            details={"purpose": purpose, "reason": reason},
        )
    return ok


def enabled() -> bool:
    return services().captcha.enabled
