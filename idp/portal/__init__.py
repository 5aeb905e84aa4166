"""The citizens' portal pages."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.portal.views import bp

    app.register_blueprint(bp)
