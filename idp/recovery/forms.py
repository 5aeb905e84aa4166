"""The forms of password recovery; field names as INTERFACES.md fixes them."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, PasswordField, RadioField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, Optional, Regexp, ValidationError

from idp.accounts.forms import (
    PASSWORD_MESSAGES, PersonIdentity, PhoneChecks, document_number_field, document_type_field, email_field,
    identity_region_field, mobile_field, nfkc, org_name_field, person_name_field, upper_filter,
)
from idp.accounts.names import normalise_login_name
from idp.forms import BaseForm
from idp.login.forms import captcha_field
from idp.security import identifiers
from idp.security.passwords import password_problem

ACCOUNT_TYPES = ("natural", "legal")


def code_field(label=_l("SMS verification code"), required: bool = True):
    first = DataRequired(_l("Please enter the verification code.")) if required else Optional()
    return StringField(
        label, filters=[nfkc],
        validators=[first, Regexp(r"^\d{6}$", message=_l("The verification code has 6 digits."))],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "6"},
    )


class LookupForm(BaseForm):
    """Step 1 (检索登录名): account type, login name, captcha."""

    account_type = RadioField(_l("Account type"), choices=[("natural", _l("Natural person")),
                                                           ("legal", _l("Legal entity (unit)"))],
                              default="natural", validators=[AnyOf(ACCOUNT_TYPES)])
    login_name = StringField(
        _l("Login name"), filters=[normalise_login_name],
        validators=[DataRequired(_l("Please enter your login name.")), Length(max=64)],
        render_kw={"autocomplete": "username", "maxlength": "64", "placeholder": _l("Please enter your login name")},
    )
    captcha = captcha_field()


class NewPasswordFields:
    """新密码 / 确认新密码, checked against the policy and the login name (``login_name``)."""

    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(_l("Please enter a password.")), Length(max=128)],
        description=_l("At least 8 characters with at least 3 of: upper case, lower case, digits, "
                       "special characters."),
        render_kw={"autocomplete": "new-password", "maxlength": "128"},
    )
    new_password_confirm = PasswordField(
        _l("Confirm new password"),
        validators=[DataRequired(_l("Please enter the password again.")),
                    EqualTo("new_password", _l("The two passwords do not match."))],
        render_kw={"autocomplete": "new-password", "maxlength": "128"},
    )

    def __init__(self, *args, login_name: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._login_name = login_name

    def validate_new_password(self, field):
        problem = password_problem(field.data or "", self._login_name)
        if problem:
            raise ValidationError(PASSWORD_MESSAGES[problem])


def reason_field():
    return TextAreaField(_l("Reason for the change"), validators=[Optional(), Length(max=200)],
                         render_kw={"rows": 2, "maxlength": "200"})


class UnitFields:
    org_name = StringField(_l("Unit name"), validators=[Optional(), Length(max=100)],
                           render_kw={"autocomplete": "organization", "maxlength": "100"})
    uscc = StringField(_l("Unified social credit code"), filters=[upper_filter],
                       validators=[Optional(), Length(max=40)], render_kw={"autocomplete": "off", "maxlength": "40"})


class PhoneResetForm(NewPasswordFields, BaseForm, PhoneChecks, UnitFields):
    """Step 2 by phone: 预留手机号 twice, reason, new password twice, 手机验证码. The submit
    ``send_code`` sends the code (the password and code fields are not needed then)."""

    phone = mobile_field(_l("Reserved mobile phone"))
    phone_confirm = StringField(_l("Confirm reserved mobile phone"), filters=[nfkc],
                                validators=[DataRequired(_l("Please enter the mobile phone number again."))],
                                render_kw={"autocomplete": "tel", "inputmode": "tel", "maxlength": "20"})
    reason = reason_field()
    sms_code = code_field()

    def validate_phone_confirm(self, field):
        if identifiers.normalise_mobile(field.data or "") != identifiers.normalise_mobile(self.phone.data or ""):
            raise ValidationError(_l("The two phone numbers do not match."))


class SendResetCodeForm(BaseForm, PhoneChecks, UnitFields):
    """The fields the ``send_code`` submit of step 2 needs."""

    phone = mobile_field(_l("Reserved mobile phone"))
    phone_confirm = StringField(filters=[nfkc])

    def validate_phone_confirm(self, field):
        if identifiers.normalise_mobile(field.data or "") != identifiers.normalise_mobile(self.phone.data or ""):
            raise ValidationError(_l("The two phone numbers do not match."))


class EmailResetForm(BaseForm, UnitFields):
    """Step 2 by e-mail: the reserved (confirmed) e-mail twice and the reason → a link."""

    email = email_field(required=True)
    email_confirm = StringField(_l("Confirm e-mail"), validators=[DataRequired(_l("Please enter the e-mail again."))],
                                render_kw={"autocomplete": "email", "maxlength": "120"})
    reason = reason_field()

    def validate_email_confirm(self, field):
        if (field.data or "").strip().casefold() != (self.email.data or "").strip().casefold():
            raise ValidationError(_l("The two e-mail addresses do not match."))


class LinkResetForm(NewPasswordFields, BaseForm):
    """The page behind the e-mailed link: the new password twice."""


class EmailCodeForm(BaseForm):
    email_code = code_field(_l("E-mail verification code"), required=False)


class UnitLookupForm(BaseForm):
    """Unit appeal, step 1 (检索单位名称)."""

    org_name = org_name_field()
    captcha = captcha_field()


class NaturalAppealForm(BaseForm, PersonIdentity, PhoneChecks):
    name = person_name_field()
    identity_region = identity_region_field()
    document_type = document_type_field()
    document_number = document_number_field(required=True)
    phone = mobile_field(_l("Mobile phone"))
    sms_code = code_field()


class LegalAppealForm(BaseForm, PhoneChecks):
    org_name = HiddenField()
    uscc = StringField(_l("Unified social credit code"), filters=[upper_filter],
                       validators=[DataRequired(_l("Please enter the unified social credit code.")), Length(max=40)],
                       render_kw={"autocomplete": "off", "maxlength": "40"})
    legal_rep_name = person_name_field(_l("Legal representative"))
    name = person_name_field(_l("Authorised person"))
    phone = mobile_field(_l("Contact mobile phone"))
    sms_code = code_field()

    def validate_uscc(self, field):
        value = field.data or ""
        if len(value) == 18 and value[:1].isdigit() and not identifiers.is_valid_uscc(value):
            raise ValidationError(_l("This unified social credit code is not valid (check digit)."))
