"""The identity provider: ``create_app`` builds it from the resolved settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, render_template, request, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from idp import (accounts, admin, audit, cases, delegations, dev, federation, legacy, login, notices, oauth, ops,
                 portal, recovery, signals, unit_of_work, verification)
from idp.clock import SystemClock
from idp.extensions import Services, babel, csrf, db, migrate
from idp.http import IdpRequest, add_security_headers, refused_as_too_large
from idp.i18n import LOCALE_COOKIE, LOCALES, install_template_gettext, select_locale
from idp.models import changes
from idp.oauth.revocations import create_revocation_list
from idp.security.passwords import PasswordHashing
from idp.security.pii import Keyring
from idp.services.captcha import create_captcha
from idp.services.mail import create_mail_sender
from idp.services.sms import create_sms_sender
from idp.services.storage import create_document_storage
from idp.services.verifier import create_verifier
from idp.errors import unavailable_dependency
from idp.ops.health import note_unavailable
from idp.sessions import StoreSessionInterface, refuse_without_session
from idp.settings import load_settings
from idp.store import create_store



def create_app(overrides: dict[str, Any] | None = None, clock: SystemClock | None = None) -> Flask:
    cfg = load_settings(overrides)
    theme = Path(cfg["THEME_DIR"])
    app = Flask(
        __name__,
        template_folder=str(theme / "templates"),
        static_folder=str(theme / "static"),
        instance_path=cfg["INSTANCE_DIR"],
    )
    app.request_class = IdpRequest
    app.config.update(cfg)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=cfg["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(cfg["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=cfg["MAX_FORM_BYTES"],
        MAX_FORM_MEMORY_SIZE=cfg["MAX_FORM_BYTES"],
        WTF_CSRF_TIME_LIMIT=cfg["SESSION_LIFETIME"],
        WTF_CSRF_SSL_STRICT=False,
        BABEL_TRANSLATION_DIRECTORIES=str(theme / "translations"),
        BABEL_DEFAULT_LOCALE=cfg["DEFAULT_LOCALE"],
        BABEL_DEFAULT_TIMEZONE="Asia/Shanghai",
        SESSION_COOKIE_NAME="idp_session",
        TEMPLATES_AUTO_RELOAD=False,
    )
    clock = clock or SystemClock()
    store = create_store(cfg["REDIS_URL"], clock, cfg["REDIS_PREFIX"], cfg["REDIS_SENTINEL_ADDRESSES"],
                         cfg["REDIS_SENTINEL_SERVICE"])
    keyring = Keyring.load(cfg["PII_KEYRING"], create=cfg["ENV"] != "production")
    app.extensions["idp.services"] = Services(
        clock=clock,
        store=store,
        revocations=create_revocation_list(store, clock),
        keyring=keyring,
        passwords=PasswordHashing(
            cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_KIB"], cfg["ARGON2_PARALLELISM"]
        ),
        sms=create_sms_sender(cfg, clock),
        mail=create_mail_sender(cfg, clock),
        captcha=create_captcha(cfg, store),
        verifier=create_verifier(cfg, clock),
        documents=create_document_storage(cfg, keyring),
    )
    app.session_interface = StoreSessionInterface(store, cfg["SESSION_LIFETIME"], clock)

    db.init_app(app)
    unit_of_work.init_app(app)  # one commit per request, at its end
    notices.init_app(app)  # SMS and e-mail notices: a job each, retried by the worker
    changes.install()
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    install_template_gettext(app)
    audit.connect()

    # The features, each registering its pages, subscribers, listeners and jobs itself.
    login.init_app(app)
    federation.init_app(app)
    accounts.init_app(app)
    delegations.init_app(app)
    oauth.init_app(app)
    portal.init_app(app)
    admin.init_app(app)
    cases.init_app(app)
    verification.init_app(app)
    recovery.init_app(app)
    legacy.init_app(app)
    if cfg["ENV"] == "development":
        dev.init_app(app)

    app.wsgi_app = ops.install(app, app.wsgi_app)  # probes, metrics, request ids, logs
    if cfg["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg["TRUSTED_PROXIES"], x_proto=1, x_host=1)
    _install_page_helpers(app)
    _install_error_pages(app)
    _install_security_headers(app)
    return app


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Concurrent registrations wait for the writer instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No ping before each checkout (a round trip per request, bench/PROFILE.md): connections
    # are recycled before a server or firewall drops them idle, and one broken by a database
    # restart fails one request and is replaced.
    return {"pool_recycle": 300, "pool_size": 10, "max_overflow": 10}


def _install_page_helpers(app: Flask) -> None:
    from flask_babel import get_locale

    @app.context_processor
    def page_globals():
        return {"locale": str(get_locale()), "locales": LOCALES, "captcha_enabled": app.config["CAPTCHA"] == "on"}

    @app.after_request
    def remember_locale(response):
        chosen = request.args.get("lang")
        if chosen in LOCALES:
            response.set_cookie(
                LOCALE_COOKIE, chosen, max_age=365 * 86400, httponly=True, samesite="Lax",
                secure=app.config["SECURE_COOKIES"],
            )
        return response


ERROR_MESSAGES = {
    400: _l("The request could not be understood. Please go back and try again."),
    403: _l("You are not allowed to open this page."),
    404: _l("The page you asked for does not exist."),
    405: _l("This page cannot be used that way."),
    413: _l("What you sent is too large. Please shorten it and try again."),
    429: _l("Too many attempts. Please wait a moment and try again."),
    500: _l("Something went wrong on our side. Please try again later."),
    503: _l("The service is temporarily unavailable. Please try again in a few minutes; nothing was changed."),
}


def _install_error_pages(app: Flask) -> None:
    def page(status: int, message: str, reason: str):
        body = render_template("errors/error.html", status=status, message=message, reason=reason)
        return body, status

    def unavailable(dependency: str, error: BaseException):
        """Redis or the database did not answer: 503, a page in the user's language, one line for
        the operator (no traceback: the cause is outside), and the session left as stored."""
        cause = getattr(error, "error", None) or error
        session.unavailable = cause  # not written back
        note_unavailable(dependency, cause, request.path)
        body, status = page(503, ERROR_MESSAGES[503], f"{dependency}_unavailable")
        return body, status, {"Retry-After": "30"}

    @app.before_request
    def refuse_without_a_session():
        if request.endpoint != "static":
            refuse_without_session()

    # First of all, before the CSRF check (which needs the session).
    app.before_request_funcs[None].insert(0, app.before_request_funcs[None].pop())

    plain_log_exception = app.log_exception

    def log_exception(exc_info):
        if unavailable_dependency(exc_info[1]) is None:
            plain_log_exception(exc_info)

    app.log_exception = log_exception

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        signals.request_refused.send(
            app, subject=request.path, outcome="refused", details={"reason": "csrf_failed"}
        )
        return page(400, _("This form has expired or was not sent from this site. "
                           "Please reload the page and try again; nothing was saved."), "csrf_failed")

    @app.errorhandler(HTTPException)
    def http_error(error):
        status = error.code or 500
        original = getattr(error, "original_exception", None)
        dependency = unavailable_dependency(original) if original is not None else None
        if dependency:  # raised while writing the session back, after the view
            return unavailable(dependency, original)
        if status == 413:
            refused_as_too_large(app, request.path)
        body, status = page(status, ERROR_MESSAGES.get(status, ERROR_MESSAGES[400]), f"http_{status}")
        # The exception's own headers stay: a 405 names the methods allowed (RFC 9110 §15.5.6).
        kept = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return body, status, kept

    @app.errorhandler(Exception)
    def unexpected(error):
        dependency = unavailable_dependency(error)
        if dependency:
            return unavailable(dependency, error)
        app.logger.exception("unhandled error")
        db.session.rollback()
        return page(500, ERROR_MESSAGES[500], "server_error")


def _install_security_headers(app: Flask) -> None:
    production = app.config["ENV"] == "production"

    @app.after_request
    def headers(response):
        return add_security_headers(response, production)
