"""WSGI entry point for servers other than `idp serve` (gunicorn wsgi:app, uWSGI …)."""

from idp import create_app

app = create_app()
