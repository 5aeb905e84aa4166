"""The request class: form bodies decoded so that invalid UTF-8 is visible to validation."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from idp import signals

# No form of the provider has more than a few dozen fields; a body with thousands of tiny
# fields costs parsing time and memory far beyond its size (multipart bodies have Werkzeug's
# own max_form_parts, also 1000).
MAX_FORM_FIELDS = 1000


def refused_as_too_large(app, path: str) -> None:
    """Audit a body refused for its size (413), whichever layer answered it."""
    signals.request_refused.send(app, subject=path, outcome="refused", details={"reason": "too_large"})


class TooManyFields(RequestEntityTooLarge):
    description = "The form has too many fields."


class ReplacingFormDataParser(FormDataParser):
    """Werkzeug turns invalid UTF-8 in url-encoded bodies back into literal ``%FF`` text,
    which would be stored silently. Decoding with replacement leaves U+FFFD instead (as for
    multipart bodies), and every form refuses U+FFFD at its field (``idp.forms``).

    More than MAX_FORM_FIELDS fields is refused with 413 (the error page, audited as
    ``request_refused``), not silently parsed as an empty form."""

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        try:
            items = parse_qsl(
                stream.read().decode("utf-8", "replace"), keep_blank_values=True, errors="replace",
                max_num_fields=MAX_FORM_FIELDS,
            )
        except ValueError as exc:  # "Max number of fields exceeded"
            raise TooManyFields() from exc
        return stream, self.cls(items), self.cls()


class IdpRequest(Request):
    form_data_parser_class = ReplacingFormDataParser

    # Document uploads (verification and password appeals: two photos of at most 1 MB each) are the one larger body; every other
    # path keeps the global MAX_FORM_BYTES. Decided by path, as the CSRF check reads the form
    # before any view could raise the limit.
    UPLOAD_PATHS = ("/center/profile/documents", "/password/appeal")
    UPLOAD_BODY_LIMIT = 3 * 1024 * 1024

    @property
    def max_content_length(self):  # type: ignore[override]
        if self.path in self.UPLOAD_PATHS:
            return self.UPLOAD_BODY_LIMIT
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value):
        Request.max_content_length.fset(self, value)

    @property
    def max_form_memory_size(self):  # type: ignore[override]
        if self.path in self.UPLOAD_PATHS:
            return self.UPLOAD_BODY_LIMIT
        return super().max_form_memory_size

    @max_form_memory_size.setter
    def max_form_memory_size(self, value):
        Request.max_form_memory_size.fset(self, value)


_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", _CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def add_security_headers(response, production: bool):
    """The headers every answer carries, where the view has not set its own. The names present
    are collected once: a look-up per header scanned all headers and raised inside for each
    absent one, a quarter of userinfo's CPU (bench/PROFILE.md)."""
    present = {name.lower() for name in response.headers.keys()}
    for name, value in (*SECURITY_HEADERS, HSTS) if production else SECURITY_HEADERS:
        if name.lower() not in present:
            response.headers.add(name, value)
    if "cache-control" not in present and response.mimetype == "text/html":
        response.headers.add("Cache-Control", "no-store")
    return response


def no_store(response):
    """Token and user data: never kept by a cache (RFC 6749 §5.1, RFC 7662 §2.2)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
