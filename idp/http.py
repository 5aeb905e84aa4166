"""The request class: form bodies decoded so that invalid UTF-8 is visible to validation."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request
from werkzeug.formparser import FormDataParser


class ReplacingFormDataParser(FormDataParser):
    """Werkzeug turns invalid UTF-8 in url-encoded bodies back into literal ``%FF`` text,
    which would be stored silently. Decoding with replacement leaves U+FFFD instead (as for
    multipart bodies), and every form refuses U+FFFD at its field (``idp.forms``)."""

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        items = parse_qsl(
            stream.read().decode("utf-8", "replace"), keep_blank_values=True, errors="replace"
        )
        return stream, self.cls(items), self.cls()


class IdpRequest(Request):
    form_data_parser_class = ReplacingFormDataParser
