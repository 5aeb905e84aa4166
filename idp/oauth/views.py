"""The provider's HTTP endpoints: discovery, JWKS, authorization, revocation, RP-initiated
logout, and the consent page (token, userinfo and introspection: idp.oauth.bare)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Payload, scope_to_list
from authlib.oauth2.rfc6749 import OAuth2Request as OAuth2RequestBase
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidRequestError
from authlib.oidc.core.errors import (AccountSelectionRequiredError, ConsentRequiredError,
                                      InteractionRequiredError, LoginRequiredError)
from flask import (Blueprint, current_app, jsonify, make_response, redirect, render_template,
                   request, session, url_for)
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from idp import signals
from idp.delegations import service as delegations
from idp.extensions import csrf, services
from idp.http import no_store
from idp.i18n import ui_locales
from idp.login import interaction
from idp.login.flow import current_authentication
from idp.login.policy import POLICY, Situation, may_act_for_oneself
from idp.login.record import OFFERED_EXTENSION, acr_values_supported
from idp.oauth import claims as claim_sets
from idp.oauth import keys, sessions, storage
from idp.sessions import current_account

bp = Blueprint("oauth", __name__)

RESPONSE_MODES = ("query", "form_post")
MAX_NONCE_LENGTH = 255  # the column that keeps it with the code

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
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": acr_values_supported(current_app.extensions.get(OFFERED_EXTENSION, ())),
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


class AuthorizationRequest(OAuth2RequestBase):
    """An authorization request as Authlib validates it, made from its parameters alone: the
    browser's request at the endpoint, or the copy stored for an interaction
    (idp.login.interaction) when the interaction resumes it — never a request rebuilt to look
    like the browser's. ``path``: the endpoint's URL with the query, as the browser sent it."""

    def __init__(self, pairs, uri: str, path: str, headers=None) -> None:
        super().__init__(method="GET", uri=uri, headers=headers or {})
        self.pairs = [(str(k), str(v)) for k, v in pairs]
        self.values = MultiDict(self.pairs)
        self.path = path
        self.payload = _Payload(self.values)

    @classmethod
    def of(cls, req) -> AuthorizationRequest:
        """The browser's request; a POST from the consent page is the request of its query."""
        own_page = "consent" in req.form or "represents" in req.form
        source = req.args if req.method == "POST" and own_page else req.values
        return cls(source.items(multi=True), f"{req.scheme}://{req.host}{req.root_path}{req.path}",
                   req.full_path, req.headers)

    @classmethod
    def stored(cls, data: dict) -> AuthorizationRequest:
        return cls(data["params"], data["uri"], data["path"])

    def to_store(self) -> dict:
        return {"params": [list(pair) for pair in self.pairs], "uri": self.uri, "path": self.path}

    @property
    def fingerprint(self) -> str:
        """The request's parameters in a canonical order: what a fresh sign-in was for."""
        return urlencode(sorted(self.pairs))

    @property
    def response_mode(self) -> str:
        return self.values.get("response_mode") or "query"


class _Payload(OAuth2Payload):
    def __init__(self, values: MultiDict) -> None:
        self._values = values

    @property
    def data(self):
        return self._values

    @property
    def datalist(self):
        return {key: self._values.getlist(key) for key in self._values}


def _signed_in():
    """The active account signed in in this browser and its sign-in's record, or (None, None)."""
    account = current_account()
    if account is None or account.status != "active":
        return None, None
    return account, current_authentication(account)


def _deliver(auth_req: AuthorizationRequest, redirect_uri: str, params: list[tuple[str, str]]):
    """Send the authorization response by the requested mode (OAuth 2.0 Form Post Response
    Mode for form_post), always with ``iss`` (RFC 9207)."""
    if not any(k == "iss" for k, _ in params):
        params = [*params, ("iss", current_app.config["ISSUER"])]
    if auth_req.response_mode == "form_post":
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


def _error(auth_req: AuthorizationRequest, error: OAuth2Error):
    """RFC 6749 §4.1.2.1: redirect only to a redirect URI validated for a known client;
    otherwise an error page."""
    redirect_uri = getattr(error, "redirect_uri", None)
    if not redirect_uri:
        return make_response(render_template("oauth/error.html", error=error.error,
                                             description=error.description or ""), 400)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    state = auth_req.values.get("state")
    if state is not None:
        params.append(("state", state))
    return _deliver(auth_req, redirect_uri, params)


def _repeated_parameter(auth_req: AuthorizationRequest) -> str | None:
    for key in auth_req.values:
        if len(auth_req.values.getlist(key)) > 1:
            return key
    return None


def _to_login(auth_req: AuthorizationRequest, client):
    """Hand the browser to the sign-in, the validated request stored for it (server-side, in
    this browser's session, single use, expiring: idp.login.interaction); login_hint and
    ui_locales carried. ``next`` is only where the browser goes should the stored request be
    gone; the answer comes from the stored copy."""
    args = {"next": auth_req.path, "interaction": interaction.store(auth_req.to_store())}
    hint = auth_req.values.get("login_hint")
    if hint:
        args["login_hint"] = hint[:64]
    types = [t for t in ("natural", "legal") if client.allows_account_type(t)]
    if len(types) == 1:
        args["type"] = types[0]
    locale = ui_locales()
    if locale:
        args["lang"] = locale
    return redirect(url_for("login.login", **args))


def _max_age(auth_req: AuthorizationRequest) -> int | None:
    max_age = auth_req.values.get("max_age")
    if max_age is None:
        return None
    try:
        return int(max_age)
    except ValueError:
        raise InvalidRequestError("'max_age' must be a number of seconds") from None


def _hint_sub(auth_req: AuthorizationRequest) -> str | None:
    """The ``sub`` of the id_token_hint, once verified as an ID token of this provider."""
    hint = auth_req.values.get("id_token_hint")
    if not hint:
        return None
    try:
        return keys.id_token_hint_claims(hint)["sub"]
    except keys.InvalidToken:
        raise InvalidRequestError("'id_token_hint' is not an ID token of this provider") from None


# What the client hears for each missing prompt when it asked for no page (OIDC Core §3.1.2.6).
PROMPT_NONE_ERRORS = {
    "login_required": LoginRequiredError,
    "consent_required": ConsentRequiredError,
    "account_selection_required": AccountSelectionRequiredError,
    "interaction_required": InteractionRequiredError,
}
PROMPT_NONE_DESCRIPTIONS = {"verification_required": "The system requires a real-name verified user."}


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize():
    """OIDC Core §3.1.2.1: GET and POST. A POST that carries the consent decision comes from
    our own consent page and must carry its CSRF token."""
    decision = chosen = None
    if request.method == "POST":
        if "consent" in request.form:
            csrf.protect()
            decision = request.form.get("consent")
        elif "represents" in request.form:  # our own page: whom the user acts for
            csrf.protect()
            chosen = request.form.get("represents") or ""
        elif not request.args:
            # A POSTed request continues as the equivalent GET, so that the login page and the
            # consent page can come back to it by URL.
            return redirect(url_for("oauth.authorize") + "?" + urlencode(list(request.form.items(multi=True))), 303)
    return answer(AuthorizationRequest.of(request), decision=decision, chosen=chosen)


def resume(stored: dict):
    """The interaction finished (idp.login.views): answer the request it was stored for, by the
    same function as the endpoint. Its answer goes to the browser at once when it is a redirect
    (the code or an error for the client, or the sign-in again), as Keycloak does: one round
    trip fewer. A page (consent, a refusal, form_post) is reached by the browser at the stored
    request's own URL, the sign-in just done counting as fresh for it once."""
    auth_req = AuthorizationRequest.stored(stored)
    if auth_req.response_mode != "form_post":
        response = answer(auth_req, fresh=True)
        if response.status_code in (301, 302, 303, 307):
            return response
    session["fresh_login_for"] = auth_req.fingerprint
    return redirect(auth_req.path)


REPRESENTS_KEY = "represents_for"  # the browser session's choice of whom to act for, per client
SELECT_FRESH_KEY = "represents_chosen_for"


class RepresentsNotOffered(Exception):
    """A ``represents`` choice that is not one of those offered: forged, or replayed after the
    authorisation ended."""


def _represents(auth_req, account, authentication, client, scopes, chosen):
    """The choice of whom the user acts for at this client (INTERFACES.md ``represents``):
    (the ids offered, what is chosen: ``self``, an authorisation or None, whether it was chosen
    for this very request). Only a natural person asking for scope ``delegation`` with active
    authorisations for this client is offered any (one query); the choice is remembered per
    client for the browser session, and void once its authorisation no longer is offered."""
    if (account is None or authentication is None or "delegation" not in scopes
            or account.account_type != "natural"):
        return (), None, False
    offered = {d.id: d for d in delegations.choices_for(account.id, client.client_id)}
    remembered = dict(session.get(REPRESENTS_KEY) or {})
    fresh = session.get(SELECT_FRESH_KEY) == auth_req.fingerprint
    self_allowed = may_act_for_oneself(client)
    if chosen is not None:
        if (chosen != delegations.SELF or not self_allowed) and chosen not in offered:
            raise RepresentsNotOffered()
        remembered[client.client_id] = chosen
        session[REPRESENTS_KEY] = remembered
        session[SELECT_FRESH_KEY] = auth_req.fingerprint
        fresh = True
    if not offered:
        return (), None, fresh
    choice = remembered.get(client.client_id)
    if choice == delegations.SELF and self_allowed:
        return tuple(offered), delegations.SELF, fresh
    return tuple(offered), offered.get(choice), fresh


def answer(auth_req: AuthorizationRequest, *, decision: str | None = None, fresh: bool = False,
           chosen: str | None = None):
    """The validated authorization request answered: the code or an error for the client, or
    the interaction the policy (idp.login.policy) finds missing. ``decision``: the consent
    page's; ``chosen``: the choice page's (whom the user acts for); ``fresh``: a sign-in just
    finished for this very request."""
    repeated = _repeated_parameter(auth_req)
    account, authentication = _signed_in()
    try:
        grant = _server().get_consent_grant(request=auth_req, end_user=account)
        redirect_uri = grant.redirect_uri
        if repeated:
            raise InvalidRequestError(f"Repeated parameter '{repeated}'.", redirect_uri=redirect_uri)
        if auth_req.response_mode not in RESPONSE_MODES:
            raise InvalidRequestError("Unsupported 'response_mode'.", redirect_uri=redirect_uri)
        if "request" in auth_req.values:
            raise OAuth2Error(error="request_not_supported", redirect_uri=redirect_uri)
        if "request_uri" in auth_req.values:
            raise OAuth2Error(error="request_uri_not_supported", redirect_uri=redirect_uri)
        if len(auth_req.values.get("nonce") or "") > MAX_NONCE_LENGTH:
            raise InvalidRequestError(f"'nonce' is longer than {MAX_NONCE_LENGTH} characters.",
                                      redirect_uri=redirect_uri)
        prompts = frozenset((auth_req.values.get("prompt") or "").split())
        try:
            max_age, hint_sub = _max_age(auth_req), _hint_sub(auth_req)
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise
        client = grant.client
        scopes = scope_to_list(grant.request.scope) or []
        try:
            offered, represents, chose_now = _represents(auth_req, account, authentication, client, scopes, chosen)
        except RepresentsNotOffered:
            signals.request_refused.send(current_app._get_current_object(), subject=account.login_name,
                                         outcome="refused", details={"reason": "represents_not_offered",
                                                                     "client_id": client.client_id})
            return make_response(render_template("oauth/represents_refused.html", client=client), 400)
        situation = Situation(
            account=account, authentication=authentication, client=client, now=services().clock.time(),
            prompts=prompts, max_age=max_age, hint_sub=hint_sub, scopes=tuple(scopes),
            fresh=fresh or session.get("fresh_login_for") == auth_req.fingerprint,
            consent_covers=lambda: storage.consent_covers(account.id, client.client_id, scopes),
            represent_choices=offered, represents_chosen=represents is not None, represents_fresh=chose_now)
        missing = POLICY.missing(situation)
        if missing is not None:
            if "none" in prompts:  # OIDC Core §3.1.2.1: no page; the client hears what is missing
                raise PROMPT_NONE_ERRORS[missing.prompt.error](
                    redirect_uri=redirect_uri, description=PROMPT_NONE_DESCRIPTIONS.get(missing.reason))
            if missing.prompt.interaction == "login":
                return _to_login(auth_req, client)
            if missing.reason == "account_type_not_allowed":
                return make_response(render_template("oauth/account_type_refused.html", client=client,
                                                     account=account), 403)
            if missing.reason == "verification_required":
                return make_response(render_template("oauth/verification_required.html", client=client,
                                                     account=account), 403)
            if missing.prompt.interaction == "select_account":
                return make_response(render_template(
                    "oauth/select_represents.html", client=client, account=account, action=auth_req.path,
                    self_allowed=may_act_for_oneself(client),
                    choices=[c for c in delegations.choices_for(account.id, client.client_id)]))
            if missing.prompt.interaction != "consent":
                raise InteractionRequiredError(redirect_uri=redirect_uri)
            if decision is None:
                return make_response(render_template(
                    "oauth/consent.html", client=client, account=account,
                    scopes=[(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in scopes]))
            if decision != "allow":
                signals.consent_granted.send(current_app._get_current_object(), subject=account.login_name,
                                             outcome="refused", details={"client_id": client.client_id})
                return _error(auth_req, OAuth2Error(error="access_denied", description="The user denied the request.",
                                                    redirect_uri=redirect_uri))
            storage.remember_consent(account.id, client.client_id, scopes)
            signals.consent_granted.send(current_app._get_current_object(), subject=account.login_name,
                                         details={"client_id": client.client_id, "scopes": scopes})
    except OAuth2Error as error:
        return _error(auth_req, error)
    session.pop("fresh_login_for", None)
    session.pop(SELECT_FRESH_KEY, None)
    acting_for = represents if represents not in (None, delegations.SELF) else None
    if acting_for is not None:  # the sign-in's record names the unit for this client's tokens
        authentication = dataclasses.replace(authentication, represents=delegations.represents_claim(acting_for))
        delegations.record_sign_in(acting_for.id, authentication.sid, grant.client.client_id, account.id)
    response = _server().create_authorization_response(
        request=grant.request, grant=grant, grant_user=storage.Grantee(account.id, authentication))
    sessions.join(authentication.sid, grant.client.client_id)  # with the code: one unit, the request's
    location = response.headers.get("Location")
    if location and auth_req.response_mode == "form_post":
        target = urlsplit(location)
        base = target._replace(query="").geturl()
        return _deliver(auth_req, base, parse_qsl(target.query))
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
        from idp.oauth.server import EndSession

        reason = EndSession.confirmation_needed(req, current_account(), session.get("sid"))
        if reason:
            return render_template("login/logout.html", client=req.client, action=request.full_path,
                                   reason=reason)
    response = _server().create_endpoint_response("end_session", req)
    return response or render_template("oauth/logged_out.html", client=req.client)


# The sign-in hands a finished interaction back to the protocol layer through this, so that
# the login package never imports this one (idp.login.interaction).
bp.record_once(lambda state: interaction.on_resume(state.app, resume))
