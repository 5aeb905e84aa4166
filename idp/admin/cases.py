"""The review queue in the console: the list with filters and counts, a case's page, and
claim / release / approve / reject. The rules live in ``idp.cases``; this module only maps
requests to it and its reason codes to messages."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from wtforms import TextAreaField

from idp import cases, signals
from idp.admin.access import can, current_staff, staff_required
from idp.forms import BaseForm
from idp.models.cases import APPROVED, PENDING, REJECTED, VOIDED, ReviewCase

bp = Blueprint("admin_cases", __name__, url_prefix="/admin/cases")

STATE_LABELS = {PENDING: _l("Pending"), APPROVED: _l("Approved"), REJECTED: _l("Rejected"),
                VOIDED: _l("Voided")}
CLAIM_FILTERS = {"all": _l("All"), "mine": _l("Held by me"), "unclaimed": _l("Unclaimed")}

MESSAGES = {
    "claimed_by_other": _l("Another reviewer holds this case. It can be taken over once their claim "
                           "has lapsed (30 minutes without activity)."),
    "not_claimed": _l("Claim the case before deciding it."),
    "already_decided": _l("This case has already been decided; a decision is final."),
    "reason_required": _l("Give the reason for the rejection; the applicant is shown it."),
    "reason_too_long": _l("The reason must be at most 1000 characters long."),
    "unknown_case_type": _l("Cases of this type cannot be decided yet."),
    # Password appeals (idp.recovery): approval needs an account to reset, and an active one.
    "appeal_without_account": _l("No account matches this appeal: it can only be rejected."),
    "appeal_account_disabled": _l("The account of this appeal is disabled: it can only be rejected."),
}
# Refusals that are a clash with someone else's action (409), not a bad request (400).
CONFLICTS = {"claimed_by_other", "not_claimed", "already_decided", "unknown_case_type"}

DONE = {
    "claimed": _l("You now hold this case."),
    "released": _l("The case is back in the queue."),
    "approved": _l("The case has been approved."),
    "rejected": _l("The case has been rejected."),
}


class DecisionForm(BaseForm):
    reason = TextAreaField(
        _l("Reason"), description=_l("Required for a rejection: the applicant is shown it."),
        render_kw={"rows": 4, "cols": 48, "maxlength": cases.MAX_REASON},
    )


def _case_or_404(case_id: int) -> ReviewCase:
    case = cases.get(case_id)
    if case is None:
        abort(404)
    return case


def _viewed(case: ReviewCase, what: str) -> None:
    signals.personal_data_viewed.send(
        current_app._get_current_object(), subject=f"case:{case.id}", actor=current_staff().login,
        details={"case_id": case.id, "case_type": case.case_type, "account_id": case.account_id, "what": what},
    )


def _detail(case: ReviewCase, form: DecisionForm, error: str | None = None, status: int = 200):
    me = current_staff()
    claim = cases.claim_status(case, me.login)
    registered = cases.case_type(case.case_type)
    # Personal data in clear only for the reviewer holding the case, and every such view audited.
    clear = claim == "mine" and registered is not None and registered.describe_clear is not None
    sections = registered.describe_clear(case) if clear else cases.describe(case)
    if clear:
        _viewed(case, "case_data")
    return render_template(
        "admin/cases/detail.html", case=case, account=cases.account_of(case), form=form,
        sections=sections, documents=cases.documents(case), clear=clear,
        document_links=cases.document_kinds(case) if claim == "mine" else [],
        claim=cases.claim_status(case, me.login), holder=cases.active_holder(case),
        claim_expires_at=cases.claim_expires_at(case), type_label=cases.type_label,
        state_labels=STATE_LABELS, error=error, message=MESSAGES.get(error) if error else None,
    ), status


def _refused(case: ReviewCase, form: DecisionForm, error: cases.CaseError):
    if error.reason in ("reason_required", "reason_too_long"):
        form.error("reason", MESSAGES[error.reason])
    return _detail(case, form, error.reason, 409 if error.reason in CONFLICTS else 400)


@bp.get("/")
@staff_required("cases.view")
def index():
    me = current_staff()
    args = request.args
    known_types = {t.name for t in cases.case_types()}
    case_type = args.get("type") if args.get("type") in known_types else None
    state = args.get("state", PENDING)
    state = None if state == "all" else (state if state in cases.STATES else PENDING)
    claim = args.get("claim") if args.get("claim") in CLAIM_FILTERS else "all"
    text = (args.get("q") or "").strip()[:100]
    page = args.get("page", 1, type=int)
    result = cases.list_cases(
        case_type=case_type, state=state, claimed_by=me.login if claim == "mine" else None,
        unclaimed=claim == "unclaimed", text=text, page=page if 0 < page < 100_000 else 1,
    )
    filters = {"type": case_type or "", "state": state or "all", "claim": claim, "q": text}
    return render_template(
        "admin/cases/index.html", result=result, figures=cases.counts(me.login, case_type),
        filters=filters, case_types=cases.case_types(), type_label=cases.type_label,
        state_labels=STATE_LABELS, claim_filters=CLAIM_FILTERS, active_holder=cases.active_holder,
    )


@bp.get("/<int:case_id>")
@staff_required("cases.view")
def detail(case_id: int):
    case = _case_or_404(case_id)
    if can("cases.decide"):
        cases.note_activity(case, current_staff())
    return _detail(case, DecisionForm(formdata=None))


@bp.get("/<int:case_id>/documents/<kind>")
@staff_required("cases.decide")
def document(case_id: int, kind: str):
    """An uploaded document, decrypted, for the reviewer holding the case only (audited)."""
    case = _case_or_404(case_id)
    if cases.claim_status(case, current_staff().login) != "mine":
        abort(403)
    found = cases.document(case, kind)
    if found is None:
        abort(404)
    data, content_type = found
    _viewed(case, f"document:{kind}")
    response = make_response(data)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = "inline"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/<int:case_id>/claim")
@staff_required("cases.decide")
def claim(case_id: int):
    case = _case_or_404(case_id)
    try:
        cases.claim(case, current_staff())
    except cases.CaseError as error:
        return _refused(case, DecisionForm(formdata=None), error)
    flash(str(DONE["claimed"]))
    return redirect(url_for(".detail", case_id=case.id))


@bp.post("/<int:case_id>/release")
@staff_required("cases.decide")
def release(case_id: int):
    case = _case_or_404(case_id)
    try:
        cases.release(case, current_staff())
    except cases.CaseError as error:
        return _refused(case, DecisionForm(formdata=None), error)
    flash(str(DONE["released"]))
    return redirect(url_for(".index"))


@bp.post("/<int:case_id>/decide")
@staff_required("cases.decide")
def decide(case_id: int):
    case = _case_or_404(case_id)
    decision = request.form.get("decision")
    if decision not in ("approve", "reject"):
        abort(400)
    form = DecisionForm()
    if not form.validate():
        return _detail(case, form, None, 400)
    try:
        if decision == "approve":
            cases.approve(case, current_staff(), form.reason.data)
        else:
            cases.reject(case, current_staff(), form.reason.data)
    except cases.CaseError as error:
        return _refused(case, form, error)
    flash(str(DONE["approved" if decision == "approve" else "rejected"]))
    return redirect(url_for(".detail", case_id=case.id))
