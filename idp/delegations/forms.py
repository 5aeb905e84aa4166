"""The forms of 用户授权管理 (a unit authorises a person) and of the person's answers."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from idp.forms import BaseForm


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class DelegationForm(BaseForm):
    """Who (login name, and the name as a safeguard), for which systems, when, in which role."""

    login_name = StringField(_l("Login name of the person"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name of the person"), validators=[DataRequired(), Length(max=100)],
                       description=_l("As a safeguard, the name must match the person's account."))
    all_clients = BooleanField(_l("All business systems that accept delegation"))
    client_ids = MultiCheckboxField(_l("Business systems"), choices=[], validate_choice=False)
    starts = DateField(_l("Valid from"), validators=[Optional()])
    ends = DateField(_l("Valid until"), validators=[Optional()])
    role = StringField(_l("Role"), validators=[Optional(), Length(max=40)], description=_l("经办人 if left empty"))


class EditDelegationForm(DelegationForm):
    """Editing: the person is fixed."""

    login_name = StringField(_l("Login name of the person"), validators=[Optional()])
    name = StringField(_l("Name of the person"), validators=[Optional()])


class ActionForm(BaseForm):
    """A button (revoke, accept, decline): only the CSRF token."""
