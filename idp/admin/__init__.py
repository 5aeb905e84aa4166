"""The staff console (/admin/): clients, users, review queues, audit, dashboard."""

from __future__ import annotations


def init_app(app) -> None:
    from idp.admin import audit, cases, clients, legacy, staff_views, users, views

    audit.protect_audit_log()
    app.register_blueprint(views.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(clients.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(staff_views.bp)
    app.register_blueprint(legacy.bp)
