"""Hostile input at scale: schemathesis generates requests from the provider's own
``/openapi.json`` (valid ones, and invalid ones for every field, header and method) and sends
them to the live provider on a loopback port. Every answer must be a documented status with a
body that matches the documented JSON schema and headers: never a 500, never a shape a client
could not parse.

Credentials are real, so the authenticated paths are exercised as well as the refusals: a
confidential client (HTTP Basic on the token, introspection and revocation endpoints), an
access token of a signed-up person (userinfo, and another one that introspection and revocation
are sometimes asked about), an initial access token (registration) and the registration access
tokens of three registered clients (RFC 7592: one each for GET, PUT and DELETE). Schemathesis
also sends each of these requests without the credential, and with a wrong one, and expects 401.

Bounded and deterministic: schemathesis's CLI in a subprocess with
``--generation-deterministic`` (the same requests every run, no example database),
MAX_EXAMPLES per operation, one worker (about a minute here). Marked ``fuzz``: CI runs it once
(.ci/run), on the embedded defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_account
from tests.live_server import _listening, live_server, settings  # noqa: F401 (the provider served on loopback)

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 80


def _credentials() -> dict[str, str]:
    from idp import clients
    from idp.clients import ClientSpec
    from idp.extensions import db
    from idp.login.record import Authentication
    from idp.oauth import server
    from idp.oauth.storage import Grantee

    confidential, secret = clients.create(ClientSpec(
        name="schemathesis confidential", redirect_uris=["https://rp.example/callback"],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scopes=["openid", "profile", "email", "phone", "offline_access"], trusted=True))
    person = make_account(login_name="fuzz_person", email="fuzz@example.cn")
    db.session.commit()
    signed_in = Authentication(sub=person.sub, account_type=person.account_type, sid="fuzz-session",
                               auth_time=int(person.created_at.timestamp()), amr=("pwd",))
    access_token = server.access_token(confidential, "authorization_code", Grantee(person.id, signed_in),
                                       "openid profile email phone")
    _, initial = clients.issue_initial_access_token("schemathesis", 7, clients.IAT_MAX_USES, "fuzz")
    without_session = Authentication(sub=person.sub, account_type=person.account_type, sid=None,
                                     auth_time=signed_in.auth_time, amr=("pwd",))
    asked_about = server.access_token(confidential, "authorization_code", Grantee(person.id, without_session),
                                      "openid profile")
    credentials = {"client_id": confidential.client_id, "client_secret": secret,
                   "access_token": access_token, "asked_about": asked_about, "initial": initial}
    for method in ("GET", "PUT", "DELETE"):  # one each: a DELETE must not leave PUT only 401s
        registered, _, registration_token = clients.register_dynamically(
            ClientSpec(name=f"schemathesis registered {method}", redirect_uris=["https://rp2.example/cb"]),
            clients.usable_initial_access_token(initial), clients.new_client_id())
        credentials[method] = [registered.client_id, registration_token]
    db.session.commit()
    return credentials


def test_every_json_endpoint_answers_as_documented_whatever_it_is_sent(live_server, tmp_path):
    """The CLI, as an operator would run it (docs/operations.md, "Hostile input"); its report
    names each failure with the request that reproduces it."""
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
                   "IDP_FUZZ_CREDENTIALS": json.dumps(_credentials()),
                   "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    command = [sys.executable, "-m", "schemathesis.cli", "run", live_server + "/openapi.json",
               "--checks", "all", "--exclude-checks", "positive_data_acceptance",
               "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
               "--workers", "1", "--request-timeout", "10",
               "--suppress-health-check", "all", "--no-color"]
    # Its working directory (where it keeps a cache) is the test's own.
    result = subprocess.run(command, env=environment, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
