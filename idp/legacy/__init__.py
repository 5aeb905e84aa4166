"""Legacy accounts (issue 16): the Torch Center import (``idp torch import``), the accounts of
the former programme application centre and the human genetic resources system, and the public
account lookup (/account-lookup). The staff console's pages are in idp.admin.legacy."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.legacy import cli, views
    from idp.login.policy import add_required_action

    app.register_blueprint(views.bp)
    # Imported accounts complete their real-name data at the first sign-in (/login/complete-real-name).
    add_required_action("legacy.complete_real_name",
                        lambda account: bool(getattr(account, "must_complete_real_name", False)))
    app.cli.add_command(cli.torch)
