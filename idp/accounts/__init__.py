"""Accounts: registration, the profile and the rules of account data."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.accounts.service import stored_password_params
    from idp.accounts.views import bp

    app.register_blueprint(bp)
    # The sign-in's timing floor follows the hashes accounts hold (docs/legacy-accounts.md).
    app.extensions["idp.services"].passwords.watch_stored(
        stored_password_params, app.config["PASSWORD_FLOOR_REFRESH"])
