"""OpenID Connect Back-Channel Logout 1.0: a signed logout token posted to every client that
took part in an ended session, through the durable job queue (retried until delivered)."""

from __future__ import annotations

import secrets
import urllib.parse

from flask import current_app

from idp import jobs
from idp.extensions import services
from idp.oauth import storage
from idp.security import outbound

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token(client_id: str, sub: str, sid: str) -> str:
    """Back-Channel Logout §2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce."""
    from idp.oauth.server import sign

    now = int(services().clock.time())
    claims = {"iss": current_app.config["ISSUER"], "aud": client_id, "iat": now, "exp": now + 120,
              "jti": secrets.token_urlsafe(16), "sub": sub, "sid": sid, "events": {EVENT: {}}}
    return sign(claims, typ="logout+jwt")


def notify_clients(account, sid: str, client_ids: list[str]) -> None:
    """One job per client of the ended session that registered a back-channel URI. The job
    names the client and the session, not the URI or the token: both are taken when the job
    runs (see ``deliver``)."""
    for client_id in client_ids:
        client = storage.query_client(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        jobs.enqueue("backchannel_logout", {"client_id": client_id, "sub": account.sub, "sid": sid})


def deliver(payload: dict) -> None:
    """Back-Channel Logout §2.5: POST the token; 200 (or 204) is delivered, anything else is
    retried by the job queue. The URI is checked again here (idp.security.outbound): a URI
    stored before the rules, or a name whose DNS now points inward, is refused before any
    connection, and the refusal is the job's error (``outbound_refused: <reason>``).

    The URI and the logout token are taken now, not when the session ended: a retry goes to the
    address staff have since corrected, and carries a token whose two-minute ``exp`` counts from
    this attempt (a retry after the backoff would otherwise deliver an expired token). A client
    disabled or deleted since has nothing left to end (its tokens are dead): nothing is sent.
    Jobs queued before this form carried ``uri`` and ``logout_token``; they are still delivered."""
    client_id = payload["client_id"]
    client = storage.query_client(client_id)
    if client is None:
        return
    uri = client.backchannel_logout_uri or payload.get("uri")
    if not uri:
        return
    token = payload.get("logout_token") or logout_token(client_id, payload["sub"], payload["sid"])
    body = urllib.parse.urlencode({"logout_token": token}).encode()
    config = current_app.config
    try:
        response = outbound.post(uri, body, {"Content-Type": "application/x-www-form-urlencoded"},
                                 policy=outbound.Policy.from_config(config), timeout=config["BACKCHANNEL_TIMEOUT"],
                                 purpose=f"backchannel_logout:{client_id}")
    except outbound.OutboundRefused as exc:
        raise RuntimeError(f"outbound_refused: {exc}") from exc
    except outbound.OutboundFailed as exc:
        raise RuntimeError(f"back-channel logout failed: {exc}") from exc
    if response.status not in (200, 204):
        raise RuntimeError(f"back-channel logout answered {response.status}")
