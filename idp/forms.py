"""Form plumbing shared by every area: hostile-input hygiene before any field validator."""

from __future__ import annotations

import functools
import unicodedata

from babel import support
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.i18n import messages_path

# U+FFFD is what the form parser leaves where the browser sent invalid UTF-8.
_REFUSED = {"\ufffd"}

# Refused categories: control (Cc, except new line and tab), surrogates (Cs), private use
# (Co) and format characters (Cf). Cf are invisible: bidirectional overrides, embeddings
# and isolates (U+202A–U+202E, U+2066–U+2069) reorder what is shown, so that a name or an
# address reads differently from what is stored ("Trojan Source"); zero-width spaces and
# joiners (U+200B–U+200D), the word joiner (U+2060), the BOM (U+FEFF) and the soft hyphen
# (U+00AD) make two values that look identical compare different, which defeats duplicate
# checks, searches in the staff console and the match with the national real-name registry.
# No exception, not even U+200D ZERO WIDTH JOINER: it matters for emoji sequences and the
# shaping of some Indic and Arabic-script text, but the names on this platform must match
# identity documents, which are written in Chinese characters or the Latin letters of a
# passport, where a joiner never occurs.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Co", "Cf"}


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value


def has_refused_characters(value: str) -> bool:
    for ch in value:
        if ch in _REFUSED:
            return True
        if unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in "\n\t":
            return True
    return False


@functools.lru_cache(maxsize=8)
def _wtforms_catalogue(locale: str):
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class BaseForm(FlaskForm):
    """Every text field refuses invalid UTF-8, control and invisible format characters, before
    other checks."""

    class Meta:
        def get_translations(self, form):
            # WTForms' own messages ("This field is required." …) in the page's language.
            # Flask-WTF reads their catalogue from disk once per request; once per process is enough.
            return _wtforms_catalogue(str(get_locale()))

        def bind_field(self, form, unbound_field, options):
            if issubclass(unbound_field.field_class, StringField):
                filters = list(unbound_field.kwargs.get("filters", ()))
                options = dict(options, filters=[strip_filter, *filters])
            return unbound_field.bind(form=form, **options)

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and has_refused_characters(field.data):
                field.errors = list(field.errors) + [
                    str(_l("This field contains characters that cannot be accepted."))
                ]
                ok = False
        return ok

    def error(self, field_name: str, message: str) -> None:
        """Attach a service-level error (a duplicate, a wrong code) to its field."""
        field = getattr(self, field_name)
        field.errors = list(field.errors) + [str(message)]
