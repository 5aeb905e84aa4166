"""OpenID Connect provider: Authlib wiring and nothing else (the login interaction lives in
idp.login; accounts in idp.accounts)."""

from __future__ import annotations


def init_app(app) -> None:
    """The authorization server, its caches and pages, the SSO session's signal subscribers,
    the back-channel logout job, and the WSGI layers answering the fast endpoints and the
    published documents before Flask (safe to call for every app)."""
    from idp import jobs
    from idp.oauth import backchannel, center, client_cache, registration, sessions, views
    from idp.oauth.bare import BareEndpoints
    from idp.oauth.published import PublishedDocuments
    from idp.oauth.server import create_server

    services = app.extensions["idp.services"]
    client_cache.install(app, services.store, services.clock)
    app.extensions["idp.oauth_server"] = create_server(app)
    sessions.connect()
    jobs.register("backchannel_logout", backchannel.deliver)
    app.register_blueprint(views.bp)
    app.register_blueprint(center.bp)
    app.register_blueprint(registration.create_blueprint(app))
    app.wsgi_app = BareEndpoints(app, PublishedDocuments(app, app.wsgi_app))
