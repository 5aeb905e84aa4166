"""Schemathesis hooks (loaded by the CLI through SCHEMATHESIS_HOOKS, see test_schemathesis.py):
each operation gets the real credential its security scheme names, read from the environment
variable IDP_FUZZ_CREDENTIALS (JSON) that the test sets. Schemathesis still sends every
operation without it and with a wrong one (its ``ignored_auth`` check), expecting 401."""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote

import schemathesis

# One registered client per RFC 7592 operation: the first DELETE must not leave GET and PUT
# nothing but 401s.
REGISTERED = {"readClient": "GET", "updateClient": "PUT", "deleteClient": "DELETE"}
CREDENTIALS = json.loads(os.environ.get("IDP_FUZZ_CREDENTIALS") or "{}")


@schemathesis.auth(refresh_interval=None)
class RealCredentials:
    def get(self, case, context):
        return CREDENTIALS

    def set(self, case, data, context):
        case.headers = case.headers or {}
        operation = case.operation.definition.raw.get("operationId")
        if operation in ("token", "introspect", "revoke"):
            # RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
            pair = f"{quote(data['client_id'], safe='')}:{quote(data['client_secret'], safe='')}"
            case.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            body = case.body
            if operation != "token" and isinstance(body, dict) and len(str(body.get("token"))) % 3 == 0:
                # Some of the time a real token: the answers about live tokens are checked too.
                case.body = {**body, "token": data["asked_about"]}
        elif operation in ("userinfo", "userinfoPost"):
            case.headers["Authorization"] = "Bearer " + data["access_token"]
        elif operation == "register":
            case.headers["Authorization"] = "Bearer " + data["initial"]
        elif operation in REGISTERED:  # RFC 7592: the client's own address and registration token
            client_id, token = data[REGISTERED[operation]]
            case.path_parameters = {**(case.path_parameters or {}), "client_id": client_id}
            case.headers["Authorization"] = "Bearer " + token
