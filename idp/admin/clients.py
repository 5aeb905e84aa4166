"""Console: business systems (clients) and the initial access tokens of dynamic registration.

Views only translate between forms and ``idp.clients``, where every rule lives. Editors
(``clients.edit``: super administrators, client managers) change things; support staff
(``clients.view``) see the same pages without any form; reviewers see nothing. Secrets and
tokens are shown once, on the page that answers the POST that made them.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from idp import clients
from idp.admin.access import current_staff, staff_required
from idp.clients import ClientError, ClientSpec
from idp.extensions import db, services
from idp.forms import BaseForm
from idp.models.staff import InitialAccessToken
from idp.oauth.claims import SCOPES_SUPPORTED
from idp.security.outbound import ADDRESS_REASONS as OUTBOUND_ADDRESS_REASONS

bp = Blueprint("admin_clients", __name__, url_prefix="/admin/clients")

# A message for every reason code of idp.clients; %(uri)s is the URI that was refused.
MESSAGES = {
    "invalid_name": _l("Enter a name of at most 100 characters."),
    "duplicate_name": _l("A business system with this name is already registered. Please choose another name."),
    "invalid_uri": _l("%(uri)s is not an absolute http or https address (no spaces, at most 500 characters)."),
    "wildcard_not_allowed": _l("%(uri)s contains a wildcard (*). Register every address exactly."),
    "fragment_not_allowed": _l("%(uri)s contains a fragment (#). Addresses must not have one."),
    "https_required": _l("%(uri)s uses http. Only https is allowed, except for loopback addresses "
                         "(localhost, 127.0.0.1, ::1)."),
    "redirect_uri_required": _l("The authorization code grant needs at least one redirect URI."),
    "unsupported_grant_type": _l("This grant type is not supported."),
    "unsupported_auth_method": _l("This authentication method is not supported."),
    "public_client_credentials": _l("A public client (without a secret) cannot use client credentials."),
    "unsupported_scope": _l("This scope is not supported."),
    "invalid_account_types": _l("Choose at least one account type."),
    "logo_too_large": _l("The logo is larger than 1 MB."),
    "logo_not_an_image": _l("The logo is not a PNG, JPEG, GIF or WebP image, or the file is damaged."),
    "logo_too_many_pixels": _l("The logo has too many pixels (at most 4096 × 4096)."),
    "public_client_has_no_secret": _l("A public client has no secret to rotate."),
    "invalid_validity_days": _l("Enter a number of days from 1 to 365."),
    "invalid_max_uses": _l("Enter a number from 1 to 1000."),
    "description_too_long": _l("The description is too long."),
    # Refusals of idp.security.outbound (a URI the provider calls must lead outside).
    "userinfo_not_allowed": _l("%(uri)s contains a user name or password before @. Remove it."),
    **dict.fromkeys(OUTBOUND_ADDRESS_REASONS, _l(
        "%(uri)s leads to an address the provider may not call (loopback, internal network, "
        "link-local, reserved, or an IP address written instead of a host name). "
        "Use the public host name of the system.")),
    **dict.fromkeys(("scheme_not_allowed", "missing_host", "invalid_host", "invalid_url"),
                    _l("%(uri)s is not an absolute http or https address (no spaces, at most 500 characters).")),
    "initiate_login_uri_origin_mismatch": _l("%(uri)s is not on the same site (scheme, host and port) as one of "
                                             "the redirect URIs. The service catalogue links only to the "
                                             "system's own site."),
}
GENERIC_MESSAGE = _l("This value cannot be accepted. Please check it.")

# Where a service error is shown when its field is not on the form.
FIELD_ALIASES = {"logo_uri": "logo"}

GRANT_LABELS = {
    "authorization_code": _l("Authorization code (users sign in)"),
    "refresh_token": _l("Refresh token"),
    "client_credentials": _l("Client credentials (system-to-system calls)"),
}
AUTH_METHOD_LABELS = {
    "client_secret_basic": _l("Secret in the Authorization header (client_secret_basic)"),
    "client_secret_post": _l("Secret in the request body (client_secret_post)"),
    "none": _l("Public client without a secret, PKCE required (none)"),
}
ACCOUNT_TYPE_LABELS = {"natural": _l("Natural person"), "legal": _l("Legal entity")}
TOKEN_STATE_LABELS = {
    "active": _l("Active"),
    "expired": _l("Expired"),
    "used_up": _l("Used up"),
    "revoked": _l("Revoked"),
}


def message(error: ClientError) -> str:
    text = str(MESSAGES.get(error.reason, GENERIC_MESSAGE))
    return text % {"uri": getattr(error, "value", "")} if "%(uri)s" in text else text


# -- forms ------------------------------------------------------------------------------------

def _newlines(value):
    """Browsers send CRLF from a textarea; a lone CR would be refused as a control character."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


def _lines(text: str | None) -> list[str]:
    return list(dict.fromkeys(line.strip() for line in (text or "").split("\n") if line.strip()))


def _at_least_one(form, field):
    if not field.data:
        raise ValidationError(_l("Choose at least one."))


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ClientForm(BaseForm):
    reason: str | None = None  # the reason code of a refusal by idp.clients
    name = StringField(_l("System name"), validators=[
        DataRequired(_l("Enter the name of the business system.")), Length(max=100)])
    description = TextAreaField(_l("Description"), filters=[_newlines], validators=[Optional(), Length(max=2000)])
    redirect_uris = TextAreaField(
        _l("Redirect URIs"), filters=[_newlines], validators=[Length(max=20000)],
        description=_l("One per line, exactly as the system sends them: absolute, without wildcards or "
                       "fragments, https except for loopback addresses."))
    post_logout_redirect_uris = TextAreaField(
        _l("Post-logout redirect URIs"), filters=[_newlines], validators=[Length(max=20000)],
        description=_l("One per line: where the system may send users after they signed out."))
    grant_types = MultiCheckboxField(_l("Grant types"), choices=_choices(GRANT_LABELS),
                                     validators=[_at_least_one])
    scopes = MultiCheckboxField(_l("Allowed scopes"), choices=[SelectChoice(s, s) for s in SCOPES_SUPPORTED])
    allowed_account_types = MultiCheckboxField(_l("Allowed account types"), choices=_choices(ACCOUNT_TYPE_LABELS),
                                               validators=[_at_least_one])
    token_endpoint_auth_method = RadioField(_l("Client authentication"), choices=_choices(AUTH_METHOD_LABELS),
                                            default="client_secret_basic")
    trusted = BooleanField(_l("Trusted first-party system (users are not asked for consent)"))
    require_verified = BooleanField(_l("Only real-name verified users may sign in"))
    initiate_login_uri = StringField(
        _l("Login entry URI (initiate_login_uri)"), validators=[Optional(), Length(max=500)],
        description=_l("The entry of this system in the service catalogue (third-party initiated login)."))
    backchannel_logout_uri = StringField(
        _l("Back-channel logout URI"), validators=[Optional(), Length(max=500)],
        description=_l("Receives a logout token when a user signs out anywhere on the platform."))
    logo = FileField(_l("Logo"), description=_l(
        "PNG, JPEG, GIF or WebP, at most 1 MB; stored as a PNG of at most 256 × 256 pixels."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from idp.oauth.views import SCOPE_DESCRIPTIONS

        self.scopes.choices = [SelectChoice(s, f"{s} — {SCOPE_DESCRIPTIONS[s]}" if s in SCOPE_DESCRIPTIONS else s)
                               for s in SCOPES_SUPPORTED]

    def spec(self, client=None) -> ClientSpec:
        return ClientSpec(
            name=self.name.data,
            description=self.description.data or None,
            redirect_uris=_lines(self.redirect_uris.data),
            post_logout_redirect_uris=_lines(self.post_logout_redirect_uris.data),
            grant_types=list(self.grant_types.data),
            scopes=list(self.scopes.data),
            allowed_account_types=list(self.allowed_account_types.data),
            token_endpoint_auth_method=self.token_endpoint_auth_method.data,
            trusted=bool(self.trusted.data), require_verified=bool(self.require_verified.data),
            initiate_login_uri=self.initiate_login_uri.data or None,
            backchannel_logout_uri=self.backchannel_logout_uri.data or None,
            logo_uri=client.logo_uri if client is not None else None,  # set by uploading a logo
        )

    def upload(self) -> bytes | None:
        """The logo's bytes, read up to one byte more than allowed (so too large is seen)."""
        storage = self.logo.data
        if not isinstance(storage, FileStorage) or not storage.filename:
            return None
        return storage.read(clients.LOGO_MAX_BYTES + 1)

    def refuse(self, error: ClientError) -> None:
        name = FIELD_ALIASES.get(error.field, error.field)
        self.error(name if name in self._fields else "name", message(error))
        self.reason = error.reason  # the page names it (data-reason) for tests and tools


NEW_CLIENT_DEFAULTS = {
    "grant_types": ["authorization_code", "refresh_token"],
    "scopes": ["openid"],
    "allowed_account_types": list(clients.ACCOUNT_TYPES),
    "token_endpoint_auth_method": "client_secret_basic",  # nosec B105  # an OAuth client authentication method name, not a secret
}


def _form_data(client) -> dict:
    return {
        "name": client.name, "description": client.description or "",
        "redirect_uris": "\n".join(client.redirect_uris or []),
        "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris or []),
        "grant_types": list(client.grant_types or []), "scopes": list(client.scopes or []),
        "allowed_account_types": list(client.allowed_account_types or []),
        "token_endpoint_auth_method": client.token_endpoint_auth_method, "trusted": client.trusted,
        "require_verified": client.require_verified,
        "initiate_login_uri": client.initiate_login_uri or "",
        "backchannel_logout_uri": client.backchannel_logout_uri or "",
    }


class InitialAccessTokenForm(BaseForm):
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)],
                              description=_l("Which system will use it, and who asked for it."))
    validity_days = IntegerField(_l("Valid for (days)"), default=7, validators=[
        InputRequired(_l("Enter a number of days from 1 to 365.")),
        NumberRange(1, clients.IAT_MAX_DAYS, _l("Enter a number of days from 1 to 365."))])
    max_uses = IntegerField(_l("Registrations allowed"), default=1, validators=[
        InputRequired(_l("Enter a number from 1 to 1000.")),
        NumberRange(1, clients.IAT_MAX_USES, _l("Enter a number from 1 to 1000."))])


# -- helpers ----------------------------------------------------------------------------------

def _actor() -> str:
    return current_staff().login


def _grace_end(client):
    """Until when the secret replaced by the last rotation still works, if it still does."""
    until = client.previous_secret_expires_at
    return until if until is not None and until > services().clock.now() else None


def _client(client_id: str):
    client = clients.find(client_id) if len(client_id) <= 64 else None
    if client is None:
        abort(404)
    return client


@bp.app_context_processor
def client_labels():
    return {"grant_label": lambda g: GRANT_LABELS.get(g, g),
            "auth_method_label": lambda m: AUTH_METHOD_LABELS.get(m, m),
            "account_type_label": lambda t: ACCOUNT_TYPE_LABELS.get(t, t),
            "token_state": lambda row: clients.initial_access_token_state(row),
            "token_state_label": lambda s: TOKEN_STATE_LABELS.get(s, s)}


# -- clients ----------------------------------------------------------------------------------

@bp.get("/")
@staff_required("clients.view")
def index():
    query = request.args.get("q", "").strip()[:100]
    return render_template("admin/clients/index.html", clients=clients.search(query), q=query)


@bp.route("/new", methods=["GET", "POST"])
@staff_required("clients.edit")
def create():
    form = ClientForm(data=NEW_CLIENT_DEFAULTS)
    if request.method == "POST":
        if form.validate():
            try:
                client, secret = clients.register(form.spec(), _actor(), form.upload())
            except ClientError as error:
                form.refuse(error)
            else:
                return render_template("admin/clients/secret.html", client=client, secret=secret, reason="created")
        return render_template("admin/clients/form.html", form=form, client=None), 400
    return render_template("admin/clients/form.html", form=form, client=None)


@bp.get("/<client_id>")
@staff_required("clients.view")
def detail(client_id: str):
    client = _client(client_id)
    return render_template("admin/clients/detail.html", client=client, previous_valid_until=_grace_end(client))


@bp.route("/<client_id>/edit", methods=["GET", "POST"])
@staff_required("clients.edit")
def edit(client_id: str):
    client = _client(client_id)
    form = ClientForm(data=_form_data(client))
    if request.method == "POST":
        if form.validate():
            try:
                secret = clients.edit(client, form.spec(client), _actor(), form.upload())
            except ClientError as error:
                db.session.rollback()
                form.refuse(error)
            else:
                if secret:
                    return render_template("admin/clients/secret.html", client=client, secret=secret,
                                           reason="issued")
                flash(_("The business system has been saved."))
                return redirect(url_for("admin_clients.detail", client_id=client.client_id))
        return render_template("admin/clients/form.html", form=form, client=client), 400
    return render_template("admin/clients/form.html", form=form, client=client)


@bp.post("/<client_id>/disable")
@staff_required("clients.edit")
def disable(client_id: str):
    clients.set_enabled(_client(client_id), False, _actor())
    flash(_("The business system is disabled: its sign-ins and token requests are refused."))
    return redirect(url_for("admin_clients.detail", client_id=client_id))


@bp.post("/<client_id>/enable")
@staff_required("clients.edit")
def enable(client_id: str):
    clients.set_enabled(_client(client_id), True, _actor())
    flash(_("The business system is enabled again."))
    return redirect(url_for("admin_clients.detail", client_id=client_id))


@bp.post("/<client_id>/approve")
@staff_required("clients.edit")
def approve(client_id: str):
    clients.approve(_client(client_id), _actor())
    flash(_("The business system is approved: the service catalogue lists it with its entry link."))
    return redirect(url_for("admin_clients.detail", client_id=client_id))


@bp.post("/<client_id>/rotate-secret")
@staff_required("clients.edit")
def rotate_secret(client_id: str):
    client = _client(client_id)
    try:
        secret = clients.rotate(client, _actor())
    except ClientError as error:
        return render_template("admin/clients/detail.html", client=client, previous_valid_until=_grace_end(client),
                               message=message(error), reason=error.reason), 400
    return render_template("admin/clients/secret.html", client=client, secret=secret, reason="rotated",
                           previous_valid_until=client.previous_secret_expires_at)


@bp.route("/<client_id>/delete", methods=["GET", "POST"])
@staff_required("clients.edit")
def delete(client_id: str):
    client = _client(client_id)
    if request.method == "POST":
        name = client.name
        clients.delete(client, _actor())
        flash(_("The business system %(name)s has been deleted.", name=name))
        return redirect(url_for("admin_clients.index"))
    return render_template("admin/clients/delete.html", client=client)


# -- initial access tokens (dynamic client registration) --------------------------------------

@bp.get("/initial-access-tokens")
@staff_required("clients.view")
def tokens():
    return render_template("admin/clients/tokens.html", tokens=clients.initial_access_tokens())


@bp.route("/initial-access-tokens/new", methods=["GET", "POST"])
@staff_required("clients.edit")
def new_token():
    form = InitialAccessTokenForm()
    if request.method == "POST":
        if form.validate():
            try:
                row, token = clients.issue_initial_access_token(
                    form.description.data, form.validity_days.data, form.max_uses.data, _actor())
            except ClientError as error:
                form.error(error.field if error.field in form._fields else "description", message(error))
            else:
                return render_template("admin/clients/token_issued.html", row=row, token=token)
        return render_template("admin/clients/token_form.html", form=form), 400
    return render_template("admin/clients/token_form.html", form=form)


@bp.post("/initial-access-tokens/<int:token_id>/revoke")
@staff_required("clients.edit")
def revoke_token(token_id: int):
    row = db.session.get(InitialAccessToken, token_id)
    if row is None:
        abort(404)
    clients.revoke_initial_access_token(row, _actor())
    flash(_("The initial access token has been revoked."))
    return redirect(url_for("admin_clients.tokens"))
