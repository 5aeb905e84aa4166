"""A business system signing its users in through the platform's 统一用户登录 (OpenID Connect).

Everything the provider offers is read from its discovery document; Authlib's Flask client
does the authorization-code flow with PKCE (S256), state and nonce, and checks the ID token
against the provider's JWKS. Local sessions are server-side (``sessions.py``) so that the
provider's back-channel logout can end them.
"""

from __future__ import annotations

import secrets

from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, jsonify, redirect, render_template, request, session

from clients.demo_rp import logout_token
from clients.demo_rp.sessions import LocalSessions

SYSTEMS = {
    "gaoqi": {"name": "高新技术企业认定", "port": 5001},
    "kexiaoqi": {"name": "科技型中小企业评价", "port": 5002},
}
# ``delegation``: a person acting for a unit (代办) signs in with ``represents`` naming the unit.
SCOPE = "openid profile org delegation"
ACCOUNT_TYPES = {"legal": "法人", "natural": "自然人"}


def create_app(system: str, port: int, issuer: str = "http://127.0.0.1:5000",
               client_secret: str | None = None, *, peer_url: str | None = None) -> Flask:
    """The demo system ``system`` (gaoqi | kexiaoqi) on http://127.0.0.1:``port``, a client of
    ``issuer``. ``peer_url``: where the other demo system runs (its default port otherwise)."""
    info = SYSTEMS[system]
    base = f"http://127.0.0.1:{port}"
    issuer = issuer.rstrip("/")
    peer = next(s for s in SYSTEMS if s != system)
    peer_url = peer_url or f"http://127.0.0.1:{SYSTEMS[peer]['port']}"

    app = Flask(__name__)
    app.config["SECURE_COOKIES"] = base.startswith("https://")
    # Systems on one host share cookies across ports: each needs its own cookie name.
    app.session_interface = sessions = LocalSessions(f"{system}_session")

    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        client_id=system,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )
    seen_logout_tokens = logout_token.SeenTokens()

    def provider_issuer() -> str:
        return idp.load_server_metadata()["issuer"]

    def own_path(url: str) -> str:
        """A path on this system from ``url``, else "/" (never a redirect elsewhere)."""
        path = url[len(base):] if url.startswith(base + "/") else "/"
        return "/" if path[1:2] in ("/", "\\") else path

    @app.context_processor
    def page_globals():
        return {"system": system, "info": info, "peer": SYSTEMS[peer], "peer_url": peer_url,
                "account_types": ACCOUNT_TYPES}

    @app.get("/")
    def home():
        signed_out = False
        if request.args.get("state"):  # back from the provider's end-session endpoint
            try:
                idp.validate_logout_response()  # our own state: this sign-out came from here
                signed_out = True
            except OAuthError:
                pass
        return render_template("home.html", user=session.get("user"), signed_out=signed_out)

    @app.get("/login")
    def login():
        # Third-party initiated login (OIDC Core §4): the service catalogue sends iss.
        if "iss" in request.args and request.args["iss"] != provider_issuer():
            return render_template("error.html", error="invalid_request",
                                   description="iss 不是本系统信任的认证中心"), 400
        session["next"] = own_path(request.args.get("target_link_uri", ""))
        if session.get("user"):
            return redirect(session.pop("next"))
        extra = {"login_hint": request.args["login_hint"]} if request.args.get("login_hint") else {}
        return idp.authorize_redirect(base + "/oidc/callback", **extra)

    @app.get("/oidc/callback")
    def callback():
        try:
            # RFC 9207: the response names its issuer (defends against mix-up attacks).
            if request.args.get("iss") != provider_issuer():
                raise OAuthError("invalid_request", "iss 与认证中心不符")
            # state (CSRF) and PKCE verifier from the session, code → tokens, ID token
            # checked against the JWKS (signature, iss, aud, exp, nonce, at_hash).
            token = idp.authorize_access_token()
            userinfo = idp.userinfo(token=token)
        except OAuthError as error:
            return render_template("error.html", error=error.error, description=error.description), 400
        claims = token["userinfo"]  # the ID token's claims
        if userinfo.get("sub") != claims["sub"]:  # OIDC Core §5.3.2
            return render_template("error.html", error="invalid_userinfo", description=None), 400
        target = session.get("next", "/")
        session.clear()
        session.renew()
        session.update(user=dict(userinfo), sub=claims["sub"], sid=claims.get("sid"),
                       id_token=token["id_token"], csrf_token=secrets.token_urlsafe(16))
        return redirect(target)

    @app.post("/logout")
    def logout():
        id_token = session.get("id_token")
        if id_token is None:
            return redirect("/")
        if not secrets.compare_digest(request.form.get("csrf_token", "").encode(),
                                      session["csrf_token"].encode()):
            return render_template("error.html", error="invalid_request", description="请从本系统页面退出登录"), 400
        session.clear()
        session.renew()
        # RP-initiated logout: the provider ends the single sign-on session, tells every other
        # system by back-channel logout, and sends the browser back here with our state.
        return idp.logout_redirect(post_logout_redirect_uri=base + "/", id_token_hint=id_token)

    @app.post("/oidc/backchannel-logout")
    def backchannel_logout():
        try:
            claims = logout_token.validate(
                request.form.get("logout_token", ""),
                issuer=provider_issuer(), client_id=system,
                jwks=lambda force: idp.fetch_jwk_set(force=force),
                algorithms=idp.load_server_metadata().get("id_token_signing_alg_values_supported"),
                seen=seen_logout_tokens,
            )
        except logout_token.InvalidLogoutToken as exc:
            response = jsonify(error="invalid_request", error_description=str(exc))
            response.status_code = 400
        else:
            sessions.end(sid=claims.get("sid"), sub=claims.get("sub"))
            response = app.response_class(status=200)
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
