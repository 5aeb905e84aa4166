"""Accounts: registration, the profile and the rules of account data."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.accounts.views import bp

    app.register_blueprint(bp)
