"""The sign-in interaction."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.login.views import bp

    app.register_blueprint(bp)
