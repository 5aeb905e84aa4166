"""The floor of a Flask endpoint: a bare "hello" app served exactly as `idp serve` serves the
provider (the same code, `idp.cli.run_server`: same server (IDP_SERVER), workers, threads,
logging), so the benchmark shows how much of each scenario's cost is the server and Flask
themselves.

Usage (same environment as the provider): python bench/hello_serve.py --workers N
The master builds the real app for `idp serve`'s configuration; every worker builds the hello
app (hello_app:create) instead of the provider.
"""

from __future__ import annotations

import argparse

from idp import create_app
from idp.cli import run_server

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="default: IDP_WORKERS, else one per core")
    args = parser.parse_args()
    with create_app().app_context():
        run_server("hello_app:create", args.workers)
