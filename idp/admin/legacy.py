"""Console pages of the legacy import: its runs (who, when, the file's digest, the counts, the
skipped lines) and a search of the imported accounts by outcome. Read only: the import runs
from the command line (``idp torch import``)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from idp.admin.access import staff_required
from idp.extensions import db
from idp.forms import BaseForm
from idp.legacy import service
from idp.models.legacy import SOURCES, LegacyImportRun
from idp.security.pii import mask_phone

bp = Blueprint("admin_legacy", __name__, url_prefix="/admin/legacy")

KIND_LABELS = {"unit": _l("Units"), "person": _l("Persons")}
SOURCE_LABELS = {"torch": _l("Torch Center"), "programme": _l("Programme application centre"),
                 "hgr": _l("Human genetic resources")}
OUTCOME_LABELS = {
    ("unit", 1): _l("(1) USCC login name carries on"),
    ("unit", 2): _l("(2) legal-entity account existed"),
    ("unit", 3): _l("(3) login name HJ_ + USCC"),
    ("unit", 4): _l("(4) natural-person account holding the unit's authorisation"),
    ("person", 1): _l("(1) Torch login name carries on"),
    ("person", 2): _l("(2) account named by the mobile existed"),
    ("person", 3): _l("(3) login name HJ- + mobile"),
    ("person", 4): _l("(4) verified person has the phone: appeal"),
}


class ImportedSearchForm(BaseForm):
    class Meta:
        csrf = False  # a GET search of records, nothing changes

    kind = SelectField(_l("Kind"), choices=[SelectChoice("", "—")] + [SelectChoice(k, v) for k, v in KIND_LABELS.items()],
                       validators=[Optional()])
    outcome = SelectField(_l("Outcome"), choices=[SelectChoice("", "—")] + [SelectChoice(str(n), f"({n})") for n in (1, 2, 3, 4)],
                          validators=[Optional()])
    source = SelectField(_l("Source"), choices=[SelectChoice("", "—")] + [SelectChoice(k, v) for k, v in SOURCE_LABELS.items()],
                         validators=[Optional()])
    login_name = StringField(_l("Login name (beginning)"), validators=[Optional(), Length(max=64)])


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@bp.get("/")
@staff_required("users.view")
def runs():
    return render_template("admin/legacy/runs.html", result=service.runs(_page_number()),
                           source_labels=SOURCE_LABELS)


@bp.get("/runs/<int:run_id>")
@staff_required("users.view")
def run(run_id: int):
    found = db.session.get(LegacyImportRun, run_id)
    if found is None:
        abort(404)
    return render_template("admin/legacy/run.html", run=found, skips=service.run_skips(run_id, _page_number()),
                           source_labels=SOURCE_LABELS)


@bp.get("/accounts")
@staff_required("users.view")
def accounts():
    form = ImportedSearchForm(request.args)
    result = None
    status = 200
    if form.validate():
        result = service.imported(form.kind.data or None, int(form.outcome.data) if form.outcome.data else None,
                                  form.source.data if form.source.data in SOURCES else None,
                                  form.login_name.data or None, _page_number())
    else:
        status = 400
    return render_template("admin/legacy/accounts.html", form=form, result=result,
                           outcome_labels=OUTCOME_LABELS, kind_labels=KIND_LABELS,
                           source_labels=SOURCE_LABELS, mask_phone=mask_phone), status
