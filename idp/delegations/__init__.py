"""Delegation (代办): units authorise natural persons to act for them (用户授权管理), persons
see and answer them (法人(单位)授权办理情况), and tokens say who acts for whom (``represents``,
``delegations``). Rules: idp.delegations.service; pages: idp.delegations.views."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.delegations import claims, service
    from idp.delegations.views import bp

    app.register_blueprint(bp)
    service.install()
    claims.declare()
