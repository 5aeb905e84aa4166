"""WSGI entry point for servers other than `idp serve` (granian --interface wsgi wsgi:app,
gunicorn wsgi:app, uWSGI …); `idp serve` builds the same app with `create_app()` in each worker."""

from idp import create_app

app = create_app()
