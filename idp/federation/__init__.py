"""Sign-in with the national government service platform (国家政务服务平台账号登录): this provider
as a relying party of an upstream OpenID Connect provider, brokering its identities
(docs/national-login.md). Sits beside the sign-in: it imports ``login``, ``accounts`` and
``security``; ``login`` knows it only through what it registers here."""

from __future__ import annotations


def init_app(app) -> None:
    from idp import signals
    from idp.federation import service, views
    from idp.federation.upstream import Upstream
    from idp.login.record import offer
    from idp.login.policy import add_required_action
    from idp.login.views import on_logout_redirect

    app.register_blueprint(views.bp)
    if Upstream.from_config(app.config) is not None:
        offer(app, ("fed",))  # discovery's acr_values_supported names urn:cn:most:idp:acr:federated
    add_required_action("national.complete_profile", service.needs_profile)
    on_logout_redirect(app, views.logout_upstream)
    signals.login_succeeded.connect(views.remember_session)

    @app.context_processor
    def national_login():
        return {"national_login_available": views.upstream() is not None}
