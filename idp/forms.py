"""Form plumbing shared by every area: hostile-input hygiene before any field validator."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField

# U+FFFD is what the form parser leaves where the browser sent invalid UTF-8.
_REFUSED = {"\ufffd"}


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value


def has_refused_characters(value: str) -> bool:
    for ch in value:
        if ch in _REFUSED:
            return True
        if unicodedata.category(ch) in {"Cc", "Cs", "Co"} and ch not in "\n\t":
            return True
    return False


class BaseForm(FlaskForm):
    """Every text field refuses invalid UTF-8 and control characters, before other checks."""

    class Meta:
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
