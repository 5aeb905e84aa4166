"""`python -m clients.demo_rp` — one demo system, configured by the environment:

DEMO_SYSTEM       gaoqi | kexiaoqi                       (default gaoqi)
DEMO_PORT         its port; must match the registration   (default 5001 | 5002)
IDP_ISSUER        the provider                             (default http://127.0.0.1:5000)
IDP_INSTANCE_DIR  where `idp demo seed` wrote demo-clients.json (the client secrets)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from werkzeug.serving import run_simple

from clients.demo_rp import SYSTEMS, create_app

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    system = os.environ.get("DEMO_SYSTEM", "gaoqi")
    if system not in SYSTEMS:
        print(f"DEMO_SYSTEM must be one of {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    port = int(os.environ.get("DEMO_PORT") or SYSTEMS[system]["port"])
    issuer = os.environ.get("IDP_ISSUER") or "http://127.0.0.1:5000"
    secrets_file = Path(os.environ.get("IDP_INSTANCE_DIR") or PROJECT_ROOT / "instance") / "demo-clients.json"
    try:
        secret = json.loads(secrets_file.read_text())[system]
    except (OSError, ValueError, KeyError):
        print(f"no client secret for {system} in {secrets_file}: run `idp demo seed` first", file=sys.stderr)
        return 1
    app = create_app(system, port, issuer, secret)
    print(f"{SYSTEMS[system]['name']} ({system}): http://127.0.0.1:{port}/ — provider {issuer}", file=sys.stderr)
    run_simple("127.0.0.1", port, app, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
