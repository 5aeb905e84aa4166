"""The provider's HTTP endpoints: discovery, JWKS, authorization, revocation, RP-initiated
logout, and the consent page (token, userinfo and introspection: idp.oauth.bare)."""

from __future__ import annotations

import hashlib
import io
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import (Blueprint, current_app, jsonify, make_response, redirect, render_template,
                   request, session, url_for)
from flask_babel import lazy_gettext as _l

from idp import signals
from idp.extensions import csrf, db, services
from idp.http import no_store
from idp.i18n import ui_locales
from idp.models.accounts import VERIFIED_STATUSES
from idp.oauth import claims as claim_sets
from idp.oauth import keys, sessions, storage

bp = Blueprint("oauth", __name__)

RESPONSE_MODES = ("query", "form_post")
MAX_NONCE_LENGTH = 255  # the column that keeps it with the code
ACR_PASSWORD = "urn:cn:most:idp:acr:password"  # nosec B105  # an acr value (OIDC Core §2), not a secret

SCOPE_DESCRIPTIONS = {
    "openid": _l("Know who you are (your account identifier and account type)"),
    "profile": _l("Your login name, name, gender and birth date"),
    "email": _l("Your e-mail address"),
    "phone": _l("Your mobile phone number"),
    "address": _l("Your address"),
    "offline_access": _l("Keep access while you are away (refresh tokens)"),
    "verification": _l("Your real-name verification status"),
    "org": _l("Your unit: name, unified social credit code and kind"),
    "delegation": _l("The units that authorised you to act for them"),
}


@bp.errorhandler(InsecureTransportError)
def insecure_transport(error):
    """Plain http to another host than loopback: the TLS proxy in front is missing or does not
    say so (IDP_TRUSTED_PROXIES). Revocation answers in JSON, as RFC 7009 clients expect."""
    if request.endpoint == "oauth.revoke":
        return no_store(jsonify(error=error.error, error_description=error.description)), 400
    return render_template("oauth/error.html", error=error.error, description=error.description), 400


# -- discovery ------------------------------------------------------------------------------

def _metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "introspection_endpoint": issuer + "/introspect",
        "revocation_endpoint": issuer + "/revoke",
        "end_session_endpoint": issuer + "/end-session",
        "registration_endpoint": issuer + "/connect/register",
        "scopes_supported": claim_sets.SCOPES_SUPPORTED,
        "claims_supported": claim_sets.CLAIMS_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(keys.ALGORITHMS),
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": [ACR_PASSWORD],
        "ui_locales_supported": ["zh-CN", "en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


def _public_json(body: bytes):
    """Public, cacheable JSON (kept and served before Flask by idp.oauth.published)."""
    response = current_app.response_class(body, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    return response.make_conditional(request)


@bp.get("/.well-known/openid-configuration")
def discovery():
    """The metadata depend only on configuration: encoded once per application."""
    body = current_app.extensions.get("idp.discovery")
    if body is None:
        body = current_app.extensions["idp.discovery"] = json.dumps(_metadata()).encode()
    return _public_json(body)


@bp.get("/jwks.json")
def jwks():
    return _public_json(keys.public_jwks_json())


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI description of the JSON endpoints (idp.oauth.openapi): built once per
    application, like discovery."""
    body = current_app.extensions.get("idp.openapi")
    if body is None:
        from idp.oauth.openapi import document

        body = current_app.extensions["idp.openapi"] = json.dumps(
            document(current_app.config["ISSUER"]), ensure_ascii=False).encode()
    return _public_json(body)


# -- authorization --------------------------------------------------------------------------

def _server():
    return current_app.extensions["idp.oauth_server"]


def _logged_in_account():
    from idp.accounts.views import current_account

    account = current_account()
    if account is None or account.status != "active":
        return None
    account._login = {"sid": session.get("sid"), "auth_time": session.get("auth_time"),
                      "amr": session.get("amr"), "acr": ACR_PASSWORD}
    return account


def _response_mode(req) -> str:
    return req.values.get("response_mode") or "query"


def _deliver(req, redirect_uri: str, params: list[tuple[str, str]]):
    """Send the authorization response by the requested mode (OAuth 2.0 Form Post Response
    Mode for form_post), always with ``iss`` (RFC 9207)."""
    if not any(k == "iss" for k, _ in params):
        params = [*params, ("iss", current_app.config["ISSUER"])]
    if _response_mode(req) == "form_post":
        page = make_response(render_template("oauth/form_post.html", action=redirect_uri, params=params))
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
        page.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self'; style-src 'self'; form-action {origin}; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        page.headers["Cache-Control"] = "no-store"
        return page
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return redirect(redirect_uri + separator + urlencode(params), 302)


def _error(req, error: OAuth2Error):
    """RFC 6749 §4.1.2.1: redirect only to a redirect URI validated for a known client;
    otherwise an error page."""
    redirect_uri = getattr(error, "redirect_uri", None)
    if not redirect_uri:
        return make_response(render_template("oauth/error.html", error=error.error,
                                             description=error.description or ""), 400)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    state = req.values.get("state")
    if state is not None:
        params.append(("state", state))
    return _deliver(req, redirect_uri, params)


def _repeated_parameter(req) -> str | None:
    for key in req.values:
        if len(req.values.getlist(key)) > 1:
            return key
    return None


def _login_redirect(req, client):
    """To the login page, returning here afterwards; login_hint and ui_locales carried."""
    args = {"next": req.full_path}
    hint = req.values.get("login_hint")
    if hint:
        args["login_hint"] = hint[:64]
    types = [t for t in ("natural", "legal") if client.allows_account_type(t)]
    if len(types) == 1:
        args["type"] = types[0]
    locale = ui_locales()
    if locale:
        args["lang"] = locale
    return redirect(url_for("login.login", **args))


def _needs_fresh_login(req, account) -> bool:
    """prompt=login, or max_age exceeded (OIDC Core §3.1.2.1), unless the login just done was
    for this very request."""
    prompts = (req.values.get("prompt") or "").split()
    max_age = req.values.get("max_age")
    stale = False
    if max_age is not None:
        try:
            limit = int(max_age)
        except ValueError:
            raise InvalidRequestError("'max_age' must be a number of seconds") from None
        stale = services().clock.time() - (session.get("auth_time") or 0) > limit
    if not ("login" in prompts or stale):
        return False
    if session.get("fresh_login_for") == req.full_path:
        return False
    return True


def _hint_mismatch(req, account) -> bool:
    """id_token_hint names another user than the one signed in."""
    hint = req.values.get("id_token_hint")
    if not hint:
        return False
    try:
        claims = keys.decode(hint).claims
    except keys.InvalidToken:
        raise InvalidRequestError("'id_token_hint' is not a valid ID token of this provider") from None
    if claims.get("iss") != current_app.config["ISSUER"]:
        raise InvalidRequestError("'id_token_hint' was not issued by this provider")
    return account is not None and claims.get("sub") != account.sub


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize():
    """OIDC Core §3.1.2.1: GET and POST. A POST that carries the consent decision comes from
    our own consent page and must carry its CSRF token."""
    if request.method == "POST":
        if "consent" in request.form:
            csrf.protect()
        elif not request.args:
            # A POSTed request continues as the equivalent GET, so that the login page and the
            # consent page can come back to it by URL.
            return redirect(url_for("oauth.authorize") + "?" + urlencode(list(request.form.items(multi=True))), 303)
    return _authorize(request)


def continue_after_login(return_to: str):
    """The authorization request the login was for, answered at once when its answer is a
    redirect (the code or an error for the client, or the login page again), as Keycloak does:
    the browser saves a round trip to /authorize. None when it is not an authorization request
    or its answer is a page (consent, a refusal, form_post), which the browser must reach by
    its own URL (idp.login.views)."""
    target = urlsplit(return_to)
    if target.scheme or target.netloc or target.path != url_for("oauth.authorize"):
        return None
    # The login request's own environment (client address, headers, scheme), as a GET of it.
    # ``return_to`` was decoded from the request's bytes as UTF-8; WSGI wants them as Latin-1.
    environ = {**request.environ, "REQUEST_METHOD": "GET", "PATH_INFO": _wsgi(target.path),
               "QUERY_STRING": _wsgi(target.query), "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()}
    environ.pop("CONTENT_TYPE", None)
    req = current_app.request_class(environ)
    if _response_mode(req) == "form_post":
        return None
    response = _authorize(req)
    return response if response.status_code in (301, 302, 303, 307) else None


def _wsgi(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def _authorize(req):
    """The authorization request ``req`` (a GET, or a POST from the consent page) answered."""
    repeated = _repeated_parameter(req)
    account = _logged_in_account()
    try:
        grant = _server().get_consent_grant(request=req, end_user=account)
        redirect_uri = grant.redirect_uri
        if repeated:
            raise InvalidRequestError(f"Repeated parameter '{repeated}'.", redirect_uri=redirect_uri)
        if _response_mode(req) not in RESPONSE_MODES:
            raise InvalidRequestError("Unsupported 'response_mode'.", redirect_uri=redirect_uri)
        if "request" in req.values:
            raise OAuth2Error(error="request_not_supported", redirect_uri=redirect_uri)
        if "request_uri" in req.values:
            raise OAuth2Error(error="request_uri_not_supported", redirect_uri=redirect_uri)
        if len(req.values.get("nonce") or "") > MAX_NONCE_LENGTH:
            raise InvalidRequestError(f"'nonce' is longer than {MAX_NONCE_LENGTH} characters.",
                                      redirect_uri=redirect_uri)
        prompts = (req.values.get("prompt") or "").split()
        try:
            mismatch = _hint_mismatch(req, account)
            fresh = account is not None and _needs_fresh_login(req, account)
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise
        if account is None or mismatch or fresh:
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=redirect_uri)
            return _login_redirect(req, grant.client)
        client = grant.client
        if not client.allows_account_type(account.account_type):
            if "none" in prompts:  # OIDC Core §3.1.2.1: no page; the client hears why
                raise LoginRequiredError(redirect_uri=redirect_uri)
            return make_response(render_template("oauth/account_type_refused.html", client=client,
                                                 account=account), 403)
        if client.require_verified and account.verification_status not in VERIFIED_STATUSES:
            if "none" in prompts:  # no page can be shown: the client hears that one is needed
                raise OAuth2Error(error="interaction_required", redirect_uri=redirect_uri,
                                  description="The system requires a real-name verified user.")
            return make_response(render_template("oauth/verification_required.html", client=client,
                                                 account=account), 403)
        scopes = scope_to_list(grant.request.scope) or []
        consented = client.trusted or (
            "consent" not in prompts and storage.consent_covers(account.id, client.client_id, scopes))
        if not consented:
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=redirect_uri)
            decision = req.form.get("consent") if req.method == "POST" else None
            if decision is None:
                return make_response(render_template(
                    "oauth/consent.html", client=client, account=account,
                    scopes=[(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in scopes]))
            if decision != "allow":
                signals.consent_granted.send(current_app._get_current_object(), subject=account.login_name,
                                             outcome="refused", details={"client_id": client.client_id})
                return _error(req, OAuth2Error(error="access_denied", description="The user denied the request.",
                                               redirect_uri=redirect_uri))
            storage.remember_consent(account.id, client.client_id, scopes)
            signals.consent_granted.send(current_app._get_current_object(), subject=account.login_name,
                                         details={"client_id": client.client_id, "scopes": scopes})
    except OAuth2Error as error:
        return _error(req, error)
    session.pop("fresh_login_for", None)
    response = _server().create_authorization_response(request=grant.request, grant=grant, grant_user=account)
    sessions.join(session.get("sid"), grant.client.client_id)
    db.session.commit()  # the code and the SSO session's new client, together
    location = response.headers.get("Location")
    if location and _response_mode(req) == "form_post":
        target = urlsplit(location)
        base = target._replace(query="").geturl()
        return _deliver(req, base, parse_qsl(target.query))
    return response


# -- revocation (token, userinfo and introspection: idp.oauth.bare) ---------------------

@bp.post("/revoke")
@csrf.exempt
def revoke():
    return no_store(_server().create_endpoint_response("revocation"))


# -- RP-initiated logout --------------------------------------------------------------------

@bp.route("/end-session", methods=["GET", "POST"])
@csrf.exempt
def end_session():
    """OpenID Connect RP-Initiated Logout 1.0. The logout happens at once only when the
    id_token_hint proves that the signed-in user's own relying party asks
    (EndSession.confirmation_needed); otherwise the user confirms (button ``logout=yes``, §2 and §6: a GET
    anyone can make a browser send must not sign its user out). Redirection goes only to a
    post_logout_redirect_uri registered, exactly, by the hint's client (§3)."""
    try:
        req = _server().validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return render_template("oauth/error.html", error=error.error,
                               description=error.description or ""), 400
    if not session.get("account_id"):
        # Nothing to end; only the hint's own client may have its registered address back.
        return redirect(req.redirect_uri) if req.redirect_uri else \
            render_template("oauth/logged_out.html", client=req.client)
    if "logout" in request.form:  # our own confirmation page
        csrf.protect()
        if request.form.get("logout") != "yes":
            return redirect(url_for("accounts.profile"))
    else:
        from idp.accounts.views import current_account
        from idp.oauth.server import EndSession

        reason = EndSession.confirmation_needed(req, current_account(), session.get("sid"))
        if reason:
            return render_template("login/logout.html", client=req.client, action=request.full_path,
                                   reason=reason)
    response = _server().create_endpoint_response("end_session", req)
    return response or render_template("oauth/logged_out.html", client=req.client)
