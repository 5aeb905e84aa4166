"""Where a sampled or profiled frame belongs: one list for profile.py (py-spy stacks) and
replay.py (cProfile entries), so both report time under the same names."""

# (category, substrings of "function (file)" frames), first match from the innermost frame wins
CATEGORIES = [
    ("argon2id (password hash)", ("argon2/", "_argon2_cffi", "argon2_cffi")),
    ("RSA key import (joserfc import_key → cryptography)", ("import_private_key", "import_key (joserfc", "import_from_dict",
                                                            "load_pem_private_key", "private_key (cryptography",
                                                            "rsa.py", "RSAPrivateNumbers")),
    # "cryptography.hazmat": how cProfile names the Rust-bound sign/verify calls themselves
    ("JOSE sign/verify (joserfc, cryptography)", ("joserfc/", "cryptography/", "cryptography.hazmat")),
    ("SQL (SQLAlchemy, psycopg)", ("sqlalchemy/", "psycopg/", "psycopg_binary", "psycopg_pool")),
    ("Redis (redis-py)", ("redis/",)),
    ("templates (Jinja2)", ("jinja2/", "<template>", ".html)")),
    ("CSRF / forms (Flask-WTF, WTForms, itsdangerous)", ("flask_wtf/", "wtforms/", "itsdangerous/")),
    ("i18n (Flask-Babel, Babel)", ("flask_babel/", "babel/")),
    ("Authlib", ("authlib/",)),
    ("signals / audit (blinker)", ("blinker/",)),
    ("JSON", ("json/",)),
    ("logging", ("logging/",)),
    ("Flask / Werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn (HTTP parsing, workers)", ("gunicorn/",)),
    ("granian (Python side of the WSGI bridge)", ("granian/",)),
    ("PII crypto (idp.security.pii)", ("pii.py",)),
]
