"""Forms of the login page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from idp.forms import BaseForm


def captcha_field() -> StringField:
    """The typed answer to the image captcha (idp.security.captcha): one form part for every
    sign-in form that shows it, the citizens' and the staff console's."""
    return StringField(
        _l("Captcha"),
        validators=[Length(max=10)],
        render_kw={"placeholder": _l("Please enter the captcha"), "autocomplete": "off",
                   "inputmode": "latin", "maxlength": "10"},
    )


class LoginForm(BaseForm):
    account_type = HiddenField(default="natural", validators=[AnyOf(("natural", "legal"))])
    login_name = StringField(
        _l("Login name"),
        validators=[DataRequired(_l("Please enter your login name.")), Length(max=64)],
        render_kw={"placeholder": _l("Please enter your login name"), "autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Please enter your password.")), Length(max=128)],
        render_kw={"placeholder": _l("Please enter your password"), "autocomplete": "current-password"},
    )
    captcha = captcha_field()
