"""The discovery document, the JWKS and the OpenAPI description, answered before Flask.

Every relying party and resource server fetches them, and they change only with the
configuration or the signing keys. Through Flask each cost as much as a hello page and more
(request context, routing, session, hooks: bench/PROFILE.md). So the first answer of each is made
by Flask, with every header the application sets, and kept as bytes; later plain GET and HEAD
requests get those bytes for as long as the document they were made from is the current one.
Anything else (a query string, a conditional request, another method) goes to Flask.
"""

from __future__ import annotations

from idp.oauth import keys

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks.json"
OPENAPI = "/openapi.json"


class PublishedDocuments:
    def __init__(self, app, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.current = {DISCOVERY: lambda: app.extensions.get("idp.discovery"),
                        JWKS: lambda: keys.cached_jwks_json(app),
                        OPENAPI: lambda: app.extensions.get("idp.openapi")}
        self.answers: dict[str, tuple] = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        method = environ.get("REQUEST_METHOD")
        current = self.current.get(path)
        if (current is None or method not in ("GET", "HEAD") or environ.get("QUERY_STRING")
                or "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ):
            return self.wsgi_app(environ, start_response)
        document = current()
        answer = self.answers.get(path)
        if answer is None or document is None or answer[0] is not document:
            return self._answer_and_keep(path, current, environ, start_response)
        _, status, headers, body = answer
        start_response(status, list(headers))
        return [body] if method == "GET" else []

    def _answer_and_keep(self, path, current, environ, start_response):
        seen = {}

        def keep_start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info)

        result = self.wsgi_app(environ, keep_start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        document = current()
        headers = seen.get("headers") or []
        if (environ["REQUEST_METHOD"] == "GET" and document is not None
                and seen.get("status", "").startswith("200")
                and not any(name.lower() == "set-cookie" for name, _ in headers)):
            self.answers[path] = (document, seen["status"], tuple(headers), body)
        return [body]
