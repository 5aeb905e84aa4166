"""Public pages: 服务事项 (the service catalogue by kind of user) and help (常见问题, phones)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, render_template, request

from idp import clients as registry

bp = Blueprint("portal", __name__)


def entry_link(client) -> str:
    """办理入口: third-party initiated login (OIDC Core §4) — the system's login URI with ``iss``,
    so the system starts a normal authorization request here."""
    separator = "&" if urlsplit(client.initiate_login_uri).query else "?"
    return client.initiate_login_uri + separator + urlencode({"iss": current_app.config["ISSUER"]})


@bp.get("/services")
def services():
    kind = request.args.get("type", "legal")
    if kind not in ("legal", "natural"):
        kind = "legal"
    systems = [(c, entry_link(c)) for c in registry.catalogue(kind)]
    return render_template("portal/services.html", kind=kind, systems=systems)


@bp.get("/help")
def help_page():
    return render_template("portal/help.html")
