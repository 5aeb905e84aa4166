"""The token endpoint, userinfo and introspection, answered without Flask's request context.

Relying parties call the token endpoint after every sign-in and at every refresh, and resource
servers call userinfo and introspection for every API request they serve: after discovery and
JWKS they are the provider's busiest endpoints. None uses what Flask's request context brings
(routing, the browser session, CSRF, locale, templates): through it, that context was half of
userinfo's CPU (bench/PROFILE.md). Here each runs in an application context with a request object
of the provider's own class, and its answer gets the same security headers as every other.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import g, jsonify
from werkzeug.exceptions import HTTPException

from idp import signals, unit_of_work
from idp.errors import unavailable_dependency
from idp.extensions import db
from idp.http import add_security_headers, no_store, refused_as_too_large
from idp.models.accounts import ACTIVE
from idp.oauth import userinfo_cache
from idp.oauth.server import verify_access_token
from idp.ops.health import note_unavailable


def userinfo(app, request):
    """OIDC Core §5.3; the token in the Authorization header or, for POST, the form body
    (RFC 6750 §2.2) — never both."""
    header = request.headers.get("Authorization", "")
    body_token = request.form.get("access_token") if request.method == "POST" else None
    if header and body_token:
        return _bearer_error(app, "invalid_request", "Use one way of sending the token.", 400)
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _bearer_error(app, "invalid_token", "Malformed Authorization header.")
        value = value.strip()
    elif body_token:
        value = body_token
    else:
        response = jsonify(error="invalid_request", error_description="No access token.")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = f'Bearer realm="{app.config["ISSUER"]}"'
        return no_store(response)
    token_claims = verify_access_token(value)
    if token_claims is None:
        return _bearer_error(app, "invalid_token", "The access token is invalid, expired or revoked.")
    scope = token_claims.get("scope") or ""
    if "openid" not in scope_to_list(scope):
        return _bearer_error(app, "insufficient_scope", "The token does not grant access to user info.", 403)
    entry = userinfo_cache.entry_for_claims(str(token_claims.get("sub")))
    if entry is None or entry.status != ACTIVE:  # deleted, disabled (idp.oauth.storage)
        return _bearer_error(app, "invalid_token", "The access token is invalid, expired or revoked.")
    return no_store(jsonify(entry.claims(scope, token_claims)))


def token(app, request):
    """One unit of work per token request: the code spent or the refresh token rotated, and
    what was issued in exchange, are committed together (also when the request fails after the
    code was spent: a code works once, and a replayed one's revocation stays)."""
    server = app.extensions["idp.oauth_server"]
    oauth_request = server.create_oauth2_request(request)
    response = server.create_token_response(oauth_request)
    unit_of_work.end(commit=True)
    _announce_token_response(app, request, oauth_request, response)
    return no_store(response)


def _announce_token_response(app, request, oauth_request, response) -> None:
    """The token_requested signal (metrics and the log line of a refusal subscribe to it).
    ``subject``: the client id, of the client Authlib authenticated when there is one (the
    Authorization header is not parsed a second time), else as the request named it."""
    details = {"grant_type": request.form.get("grant_type")}
    if response.status_code == 200:
        outcome = "success"
    else:
        outcome = "refused"
        details["error"] = (response.get_json(silent=True) or {}).get("error")
    client = getattr(oauth_request, "client", None)
    if client is not None:
        client_id = client.get_client_id()
    else:
        authorization = request.authorization
        client_id = authorization.username if authorization else request.form.get("client_id")
    signals.token_requested.send(app, subject=client_id, outcome=outcome, details=details)


def introspect(app, request):
    """RFC 7662, by Authlib's endpoint (idp.oauth.server.Introspection)."""
    return no_store(app.extensions["idp.oauth_server"].create_endpoint_response("introspection", request))


def _bearer_error(app, error: str, description: str, status: int = 401):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    challenge = f'Bearer realm="{app.config["ISSUER"]}", error="{error}", error_description="{description}"'
    response.headers["WWW-Authenticate"] = challenge
    return no_store(response)


# HEAD is answered as GET without the body, and OPTIONS with the methods, as Flask would.
ENDPOINTS = {"/token": (token, ("POST",)), "/userinfo": (userinfo, ("GET", "HEAD", "POST")),
             "/introspect": (introspect, ("POST",))}


class BareEndpoints:
    """The WSGI layer in front of Flask that answers ENDPOINTS; every other path goes on."""

    def __init__(self, app, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.production = app.config["ENV"] == "production"

    def __call__(self, environ, start_response):
        endpoint = ENDPOINTS.get(environ.get("PATH_INFO"))
        if endpoint is None:
            return self.wsgi_app(environ, start_response)
        handler, methods = endpoint
        app = self.app
        with app.app_context():
            request = app.request_class(environ)
            g.client_address = request.remote_addr  # for the audit log (idp.audit)
            unit_of_work.begin()
            if request.method in methods:
                response = self._answer(handler, request)
            else:
                if request.method == "OPTIONS":
                    response = app.response_class(status=200)
                else:
                    response = no_store(jsonify(error="invalid_request", error_description="Method not allowed."))
                    response.status_code = 405
                response.headers["Allow"] = ", ".join((*methods, "OPTIONS"))
            # The token endpoint ended its unit itself; userinfo and introspection write nothing.
            unit_of_work.end(commit=False)
            add_security_headers(response, self.production)
            # A list, not Werkzeug's iterator: the server sends it in one piece.
            start_response(response.status, response.headers.to_wsgi_list())
            return [b"" if request.method == "HEAD" else response.get_data()]

    def _unavailable(self, request, dependency: str, error: BaseException):
        """What idp/__init__.py's 503 page says, for an API: nothing was issued or spent (the
        transaction is rolled back), and the client may try again."""
        note_unavailable(dependency, error, request.path)
        response = jsonify(error="temporarily_unavailable",
                           error_description="The service is temporarily unavailable. Please try again later.")
        response.status_code = 503
        response.headers["Retry-After"] = "30"
        return no_store(response)

    def _answer(self, handler, request):
        try:
            return handler(self.app, request)
        except InsecureTransportError as error:  # plain http to another host than loopback
            response = jsonify(error=error.error, error_description=error.description)
            response.status_code = 400
            return no_store(response)
        except HTTPException as error:  # a body over the size limit (413), one that cannot be read
            if error.code == 413:
                refused_as_too_large(self.app, request.path)
            response = jsonify(error="invalid_request", error_description=error.description)
            response.status_code = error.code or 400
            return no_store(response)
        except Exception as error:  # the error page of an API: JSON, logged, nothing half-written kept
            dependency = unavailable_dependency(error)
            if dependency:  # Redis or the database did not answer: fail closed, 503, no traceback
                return self._unavailable(request, dependency, error)
            self.app.logger.exception("unhandled error")
            db.session.rollback()
            response = jsonify(error="server_error", error_description="Please try again later.")
            response.status_code = 500
            return no_store(response)
