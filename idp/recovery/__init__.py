"""Password recovery (密码找回): 登录名重置密码 by SMS code or e-mail link, 申诉找回密码 as a case
type of the review queue, and the e-mail confirmation of the user centre (docs/recovery.md)."""

from __future__ import annotations


def init_app(app) -> None:
    """Its pages, the appeal case type with the SMS of its outcome, and the job that deletes an
    appeal's documents (safe to call for every app)."""
    from idp.recovery import service
    from idp.recovery.views import bp

    service.install()
    app.register_blueprint(bp)
