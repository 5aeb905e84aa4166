"""Registration and profile forms. Formats are checked here; uniqueness and codes in the service."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from wtforms import DateField, PasswordField, SelectField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp

from idp.accounts import choices
from idp.accounts.names import is_valid_login_name, normalise_login_name
from idp.forms import BaseForm
from idp.security import identifiers
from idp.security.passwords import password_problem


def options(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def nfkc(value):
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def document_filter(value):
    return identifiers.normalise_document_number(nfkc(value)) if value else value


def upper_filter(value):
    return nfkc(value).replace(" ", "").upper() if value else value


PASSWORD_MESSAGES = {
    "password_too_short": _l("The password must be at least 8 characters long."),
    "password_too_long": _l("The password must be at most 128 characters long."),
    "password_too_simple": _l("The password must contain at least 3 of: upper case letters, "
                              "lower case letters, digits, special characters."),
    "password_equals_login_name": _l("The password must not be the same as the login name."),
    "password_unchanged": _l("The new password must differ from the current one."),
}

DOCUMENT_MESSAGES = {
    "invalid_check_digit": _l("The document number's check digit is wrong. Please check the number."),
    "invalid_format": _l("The document number does not have the format of this document type."),
    "unknown_document_type": _l("Please choose a document type."),
}

UNIT_CODE_MESSAGES = {
    "invalid_check_digit": _l("The unified social credit code's check character is wrong."),
    "invalid_format": _l("A unified social credit code has 18 characters (digits and capital "
                         "letters except I, O, Z, S, V)."),
    "unknown_region": _l("Please choose the unit's region."),
}

# Which documents each identity region may use (kept with the choices; the service checks it too).
REGION_DOCUMENTS = choices.REGION_DOCUMENTS


def login_name_field():
    return StringField(
        _l("Login name"),
        filters=[normalise_login_name],
        validators=[DataRequired(_l("Please enter a login name."))],
        description=_l("4–64 letters, digits, Chinese characters or _ . @ -; not case sensitive."),
        render_kw={"autocomplete": "username", "maxlength": "64"},
    )


def mobile_field(label=_l("Mobile phone (reserved phone)")):
    return StringField(
        label,
        filters=[nfkc],
        validators=[DataRequired(_l("Please enter a mobile phone number."))],
        description=_l("11-digit mainland number, or +country code for numbers outside the mainland."),
        render_kw={"autocomplete": "tel", "inputmode": "tel", "maxlength": "20"},
    )


def email_field(required: bool = False):
    first = DataRequired(_l("Please enter an e-mail address.")) if required else Optional()
    return StringField(
        _l("E-mail"),
        validators=[first, Length(max=120), Email(_l("Please enter a valid e-mail address."),
                                                  check_deliverability=False)],
        render_kw={"autocomplete": "email", "maxlength": "120"},
    )


class PhoneChecks:
    """Normalises the mobile number in place so the service sees one form of it."""

    def validate_phone(self, field):
        normalised = identifiers.normalise_mobile(field.data or "")
        if normalised is None:
            raise ValidationError(_l("Please enter a valid mobile phone number."))
        field.data = normalised


class NewPassword:
    """A new password typed twice, checked against the policy (and the login name)."""

    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Please enter a password."))],
        description=_l("At least 8 characters with at least 3 of: upper case, lower case, digits, "
                       "special characters."),
        render_kw={"autocomplete": "new-password", "maxlength": "128"},
    )
    password_confirm = PasswordField(
        _l("Confirm password"),
        validators=[DataRequired(_l("Please enter the password again.")),
                    EqualTo("password", _l("The two passwords do not match."))],
        render_kw={"autocomplete": "new-password", "maxlength": "128"},
    )

    def policy_login_name(self) -> str:
        return self.login_name.data or ""

    def validate_password(self, field):
        problem = password_problem(field.data or "", self.policy_login_name())
        if problem:
            raise ValidationError(PASSWORD_MESSAGES[problem])


class NewPasswordForm(BaseForm, NewPassword):
    """The required action after sign-in when the password must be changed."""

    def __init__(self, login_name: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._login_name = login_name

    def policy_login_name(self) -> str:
        return self._login_name


class RegistrationBase(BaseForm, NewPassword, PhoneChecks):
    login_name = login_name_field()
    sms_code = StringField(
        _l("SMS verification code"),
        validators=[DataRequired(_l("Please enter the SMS verification code.")),
                    Regexp(r"^\d{6}$", message=_l("The SMS verification code has 6 digits."))],
        filters=[nfkc],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "6"},
    )

    def validate_login_name(self, field):
        if not is_valid_login_name(field.data or ""):
            raise ValidationError(_l("A login name has 4–64 letters, digits, Chinese characters or _ . @ -."))


class PersonIdentity:
    """Identity region, document type and number, checked against each other.

    The type is checked against the region on every submission, also when the number is left
    empty (修改个人信息 keeps the stored number then); the number's format only when one is
    entered. That a changed type needs its number entered again is a rule of the service."""

    def document_type_fits_region(self) -> bool:
        return self.document_type.data in REGION_DOCUMENTS.get(self.identity_region.data, set())

    def validate_document_type(self, field):
        if not self.document_type_fits_region():
            raise ValidationError(_l("This document type does not fit the identity region."))

    def validate_document_number(self, field):
        if not field.data or not self.document_type_fits_region():
            return  # the mismatch is reported at the document type
        problem = identifiers.validate_document_number(self.document_type.data, field.data)
        if problem:
            raise ValidationError(DOCUMENT_MESSAGES[problem])


def identity_region_field():
    return SelectField(_l("Identity region"), choices=options(choices.IDENTITY_REGIONS), default="mainland")


def document_type_field():
    return SelectField(_l("Document type"), choices=options(choices.DOCUMENT_TYPES), default="resident_id")


def document_number_field(required: bool):
    first = DataRequired(_l("Please enter the document number.")) if required else Optional()
    return StringField(
        _l("Document number"), filters=[document_filter], validators=[first, Length(max=40)],
        render_kw={"autocomplete": "off", "maxlength": "40"},
    )


class UnitCode:
    def validate_uscc(self, field):
        problem = identifiers.validate_unit_code(self.org_region.data, field.data or "")
        if problem:
            raise ValidationError(UNIT_CODE_MESSAGES.get(problem, UNIT_CODE_MESSAGES["invalid_format"]))


def uscc_field():
    return StringField(
        _l("Unified social credit code"),
        filters=[upper_filter],
        validators=[DataRequired(_l("Please enter the unified social credit code."))],
        description=_l("Units outside the mainland enter their home registration number."),
        render_kw={"autocomplete": "off", "maxlength": "40"},
    )


def org_name_field():
    return StringField(
        _l("Unit name"), validators=[DataRequired(_l("Please enter the unit name.")), Length(max=100)],
        render_kw={"autocomplete": "organization", "maxlength": "100"},
    )


def person_name_field(label=_l("Name")):
    return StringField(
        label, validators=[DataRequired(_l("Please enter the name.")), Length(max=50)],
        render_kw={"autocomplete": "name", "maxlength": "50"},
    )


class NaturalRegistrationForm(RegistrationBase, PersonIdentity):
    name = person_name_field()
    identity_region = identity_region_field()
    document_type = document_type_field()
    document_number = document_number_field(required=True)
    phone = mobile_field()
    email = email_field()


class LegalRegistrationForm(RegistrationBase, UnitCode):
    org_name = org_name_field()
    org_kind = SelectField(_l("Unit kind"), choices=options(choices.UNIT_KINDS), default="enterprise")
    org_region = SelectField(_l("Unit region"), choices=options(choices.UNIT_REGIONS), default="domestic")
    uscc = uscc_field()
    name = person_name_field(_l("Authorised person"))
    phone = mobile_field(_l("Contact mobile phone (reserved phone)"))
    email = email_field(required=True)


class SendCodeForm(BaseForm, PhoneChecks):
    phone = mobile_field()
    captcha = StringField(_l("Captcha"), validators=[Length(max=10)])


def _optional_text(label, max_length=100, autocomplete="off"):
    return StringField(label, validators=[Optional(), Length(max=max_length)],
                       render_kw={"maxlength": str(max_length), "autocomplete": autocomplete})


def landline_field():
    return StringField(_l("Telephone"), filters=[nfkc], validators=[Optional(), Length(max=30)],
                       render_kw={"autocomplete": "tel", "maxlength": "30"})


class LandlineCheck:
    def validate_landline(self, field):
        if field.data and not identifiers.is_valid_landline(field.data):
            raise ValidationError(_l("Please enter a valid telephone number."))


class NaturalProfileForm(BaseForm, PersonIdentity, LandlineCheck):
    """修改个人信息. Personal-data fields start empty: leaving one empty keeps its value."""

    name = person_name_field()
    gender = SelectField(_l("Gender"), choices=options([("", "—"), *choices.GENDERS]), validators=[Optional()])
    ethnicity = SelectField(_l("Ethnicity"), choices=options([("", "—"), *[(e, e) for e in choices.ETHNICITIES]]),
                            validators=[Optional()])
    job_title = _optional_text(_l("Job title"), 50, "organization-title")
    birth_date = DateField(_l("Birth date"), validators=[Optional()], render_kw={"autocomplete": "bday"})
    email = email_field()
    landline = landline_field()
    identity_region = identity_region_field()
    document_type = document_type_field()
    document_number = document_number_field(required=False)
    document_valid_until = _optional_text(_l("Document valid until"), 20)
    address = _optional_text(_l("Address"), 200, "street-address")


class LegalProfileForm(BaseForm, UnitCode, LandlineCheck):
    """修改法人信息: unit basic information, authorisation information, legal representative."""

    org_name = org_name_field()
    org_kind = SelectField(_l("Unit kind"), choices=options(choices.UNIT_KINDS))
    org_region = SelectField(_l("Unit region"), choices=options(choices.UNIT_REGIONS))
    uscc = uscc_field()
    address = _optional_text(_l("Address"), 200, "street-address")
    landline = landline_field()
    name = person_name_field(_l("Authorised person"))
    email = email_field()
    legal_rep_name = _optional_text(_l("Legal representative"), 50)
    legal_rep_document_type = SelectField(_l("Legal representative's document type"),
                                          choices=options(choices.DOCUMENT_TYPES), default="resident_id")
    legal_rep_document_number = document_number_field(required=False)

    def validate_legal_rep_document_number(self, field):
        if field.data:
            problem = identifiers.validate_document_number(self.legal_rep_document_type.data, field.data)
            if problem:
                raise ValidationError(DOCUMENT_MESSAGES[problem])
