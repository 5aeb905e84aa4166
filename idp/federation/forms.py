"""Forms of the national platform's first sign-in and of the profile it asks to complete."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from idp.accounts.forms import PhoneChecks, mobile_field
from idp.forms import BaseForm


class FirstSignInForm(BaseForm):
    """INTERFACES.md: ``choice`` = ``link`` (with ``account_type``, ``login_name``,
    ``password``) or ``create``."""

    choice = HiddenField(validators=[AnyOf(("link", "create"))])
    account_type = SelectField(_l("Account type"), default="natural",
                               choices=[SelectChoice("natural", _l("Natural-person login")),
                                        SelectChoice("legal", _l("Legal-entity login"))])
    login_name = StringField(
        _l("Login name"), validators=[Optional(), Length(max=64)],
        render_kw={"placeholder": _l("Please enter your login name"), "autocomplete": "username"})
    password = PasswordField(
        _l("Password"), validators=[Optional(), Length(max=128)],
        render_kw={"placeholder": _l("Please enter your password"), "autocomplete": "current-password"})


class CompleteProfileForm(PhoneChecks, BaseForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Please enter your name.")), Length(max=100)],
                       render_kw={"autocomplete": "name", "maxlength": "100"})
    phone = mobile_field()

    def __init__(self, missing: list[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "phone"):
            if name not in missing:
                delattr(self, name)
