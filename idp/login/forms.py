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


# --- required action: complete the real-name data (accounts imported from legacy systems) ---

def _real_name_form(base, required: dict):
    """``base`` (the user centre's form) with the real-name fields it leaves optional required."""
    class RealNameForm(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for name in required:
                self[name].flags.required = True  # the asterisk and the attribute on the page

        def validate(self, extra_validators=None):
            ok = super().validate(extra_validators)
            for name, message in required.items():
                data = self[name].data
                if not (data.strip() if isinstance(data, str) else data) and not self[name].errors:
                    self.error(name, message)
                    ok = False
            return ok

    RealNameForm.__name__ = f"RealName{base.__name__}"
    RealNameForm.required_names = tuple(required)
    return RealNameForm


def real_name_forms():
    from idp.accounts.forms import LegalProfileForm, NaturalProfileForm

    return {
        "natural": _real_name_form(NaturalProfileForm, {
            "document_number": _l("Please enter the document number."),
        }),
        "legal": _real_name_form(LegalProfileForm, {
            "legal_rep_name": _l("Please enter the legal representative's name."),
            "legal_rep_document_number": _l("Please enter the document number."),
        }),
    }
