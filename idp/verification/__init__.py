"""Real-name verification: the automatic check, the documents and their manual review."""

from __future__ import annotations


def init_app(app) -> None:
    """Its review case types, the listeners that void a verification when identity data
    changes, the SMS of the review's outcome, and its pages (safe to call for every app)."""
    from idp.verification import service
    from idp.verification.views import bp

    service.install()
    app.register_blueprint(bp)
