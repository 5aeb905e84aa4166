"""OpenID Connect Back-Channel Logout 1.0: a signed logout token posted to every client that
took part in an ended session, through the durable job queue (retried until delivered)."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.parse
import urllib.request

from flask import current_app

from idp import jobs
from idp.extensions import services
from idp.oauth import storage

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token(client_id: str, sub: str, sid: str) -> str:
    """Back-Channel Logout §2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce."""
    from idp.oauth.server import sign

    now = int(services().clock.time())
    claims = {"iss": current_app.config["ISSUER"], "aud": client_id, "iat": now, "exp": now + 120,
              "jti": secrets.token_urlsafe(16), "sub": sub, "sid": sid, "events": {EVENT: {}}}
    return sign(claims, typ="logout+jwt")


def notify_clients(account, sid: str, client_ids: list[str]) -> None:
    for client_id in client_ids:
        client = storage.query_client(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        jobs.enqueue("backchannel_logout", {
            "client_id": client_id, "uri": client.backchannel_logout_uri,
            "logout_token": logout_token(client_id, account.sub, sid),
        })


@jobs.handler("backchannel_logout")
def deliver(payload: dict) -> None:
    body = urllib.parse.urlencode({"logout_token": payload["logout_token"]}).encode()
    req = urllib.request.Request(payload["uri"], data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    timeout = current_app.config["BACKCHANNEL_TIMEOUT"]
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # nosec B310  # the client's back-channel URI, http(s) only (idp.clients.check_uri)
            if response.status not in (200, 204):
                raise RuntimeError(f"back-channel logout answered {response.status}")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"back-channel logout answered {exc.code}") from exc
