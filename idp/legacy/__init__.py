"""Legacy accounts (issue 16): the Torch Center import (``idp torch import``), the accounts of
the former programme application centre and the human genetic resources system, and the public
account lookup (/account-lookup). The staff console's pages are in idp.admin.legacy."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.legacy import cli, views

    app.register_blueprint(views.bp)
    app.cli.add_command(cli.torch)
