"""The floor of a Flask endpoint: a bare "hello" app served exactly as `idp serve` serves the
provider (same gunicorn settings, worker class, threads, logging), so the benchmark shows how
much of each scenario's cost is the server and Flask themselves.

Usage (same environment as the provider): python bench/hello_serve.py --workers N
The gunicorn master builds the real app for `idp serve`'s configuration; every worker it forks
loads the hello app instead.
"""

from __future__ import annotations

import os
import sys

from hello_app import create as hello_app

import idp.cli

_real_create_app = idp.cli.create_app
_master = os.getpid()


def _create_app(*args, **kwargs):
    if os.getpid() == _master:
        return _real_create_app(*args, **kwargs)
    return hello_app()


idp.cli.create_app = _create_app

if __name__ == "__main__":
    sys.exit(idp.cli.main(["serve", *sys.argv[1:]]))
