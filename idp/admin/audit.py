"""The audit log in the console: a viewer with filters, a CSV export, and no way to change it.

Filters: event, outcome, subject, actor, client address (exact; subject and actor without
regard to case) and a range of dates, read as calendar days in Beijing time (Asia/Shanghai).
Newest first, 50 to a page. The export holds every row the filters select, as UTF-8 with a
byte-order mark so that Excel shows Chinese, and is itself audited (``audit_exported``).

There are no routes that edit or delete entries, and ``protect_audit_log()`` (run by the console's
``init_app``, for every app) makes the ORM refuse to update or delete an ``AuditEvent``. Plain Core
statements on the table (the test suite empties tables that way) are not affected.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template, request, stream_with_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from idp import signals
from idp.accounts.names import login_name_key, normalise_login_name
from idp.admin.access import current_staff, staff_required
from idp.audit import UNKNOWN_NAME_PREFIX, unknown_name
from idp.errors import Refused
from idp.extensions import db, services
from idp.forms import BaseForm
from idp.models.audit import AuditEvent

BEIJING = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = 50
MAX_FILTER_LENGTH = 100
OUTCOMES = ("success", "failure", "refused")
CSV_COLUMNS = ("time", "event", "outcome", "actor", "subject", "client_address", "details")

REASONS = ("invalid_characters", "filter_too_long", "unknown_outcome", "invalid_date", "date_range_reversed")


# --- the log cannot be changed from the application ----------------------------------------


class AuditLogImmutable(RuntimeError):
    """Raised when application code tries to change or remove an audit entry."""


def _refuse_change(mapper, connection, target) -> None:
    raise AuditLogImmutable(f"audit entry {target.id} cannot be changed or deleted")


def _refuse_bulk_change(state) -> None:
    """``session.execute(update(AuditEvent))`` and ``query(AuditEvent).delete()`` bypass the
    mapper events; refuse them here. Core statements on the bare table are not ORM statements."""
    if (state.is_update or state.is_delete) and state.is_orm_statement and any(
            mapper.class_ is AuditEvent for mapper in state.all_mappers):
        raise AuditLogImmutable("audit entries cannot be changed or deleted")


def protect_audit_log() -> None:
    """Make the ORM refuse every update and delete of an AuditEvent (idempotent)."""
    for name in ("before_update", "before_delete"):
        if not sa_event.contains(AuditEvent, name, _refuse_change):
            sa_event.listen(AuditEvent, name, _refuse_change)
    if not sa_event.contains(Session, "do_orm_execute", _refuse_bulk_change):
        sa_event.listen(Session, "do_orm_execute", _refuse_bulk_change)


# --- filters and queries (no HTTP) ----------------------------------------------------------


class AuditFilterError(Refused, ValueError):
    pass


@dataclass(frozen=True)
class AuditFilter:
    event: str = ""
    outcome: str = ""
    subject: str = ""
    actor: str = ""
    client_address: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def params(self) -> dict[str, str]:
        """The filters that are set, as query-string values (also what an export records)."""
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items() if v}


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise AuditFilterError("invalid_date") from exc


def parse_filter(values: Mapping[str, str | None]) -> AuditFilter:
    clean = {name: (values.get(name) or "").strip() for name in AuditFilter.__dataclass_fields__}
    if any(len(v) > MAX_FILTER_LENGTH for v in clean.values()):
        raise AuditFilterError("filter_too_long")
    if clean["outcome"] and clean["outcome"] not in OUTCOMES:
        raise AuditFilterError("unknown_outcome")
    date_from, date_to = _date(clean["date_from"]), _date(clean["date_to"])
    if date_from and date_to and date_from > date_to:
        raise AuditFilterError("date_range_reversed")
    return AuditFilter(clean["event"], clean["outcome"], clean["subject"], clean["actor"],
                       clean["client_address"], date_from, date_to)


def start_of_day(day: date) -> datetime:
    """Midnight of ``day`` in Beijing, as UTC (how the log stores its times)."""
    return datetime.combine(day, time(0), tzinfo=BEIJING).astimezone(timezone.utc)


def _where(f: AuditFilter) -> list:
    conditions = []
    if f.event:
        conditions.append(AuditEvent.event == f.event)
    if f.outcome:
        conditions.append(AuditEvent.outcome == f.outcome)
    if f.subject:
        conditions.append(sa.func.lower(AuditEvent.subject).in_(_as_logged(f.subject)))
    if f.actor:
        conditions.append(sa.func.lower(AuditEvent.actor).in_(_as_logged(f.actor)))
    if f.client_address:
        conditions.append(AuditEvent.client_address == f.client_address)
    if f.date_from:
        conditions.append(AuditEvent.time >= start_of_day(f.date_from))
    if f.date_to:
        conditions.append(AuditEvent.time < start_of_day(f.date_to + timedelta(days=1)))
    return conditions


def _as_logged(typed: str) -> list[str]:
    """What the log may hold for a name typed into a filter: the name itself, or, when it
    matched no account at the time, its keyed hash (``idp.audit.unknown_name``); so staff
    find attempts on an unknown name by typing it, and the log never needed to keep it."""
    return [typed.lower(), unknown_name(login_name_key(normalise_login_name(typed)))]


def _filter_for_the_log(f: AuditFilter) -> dict[str, str]:
    """The filters an export records in its own audit event: a subject or actor filter that
    names no account or staff member (a phone or ID number typed to look for mistyped
    logins) is recorded as its keyed hash, like the events it looks for."""
    params = f.params()
    for name in ("subject", "actor"):
        value = params.get(name)
        if value and not value.startswith(UNKNOWN_NAME_PREFIX) and not _names_someone(value):
            params[name] = unknown_name(login_name_key(normalise_login_name(value)))
    return params


def _names_someone(value: str) -> bool:
    from idp.accounts.service import find_account
    from idp.admin.staff import find as find_staff

    return (find_account(login_name_key(normalise_login_name(value))) is not None
            or find_staff(value) is not None)


def _newest_first(f: AuditFilter):
    return sa.select(AuditEvent).where(*_where(f)).order_by(AuditEvent.time.desc(), AuditEvent.id.desc())


def count(f: AuditFilter) -> int:
    return db.session.execute(sa.select(sa.func.count(AuditEvent.id)).where(*_where(f))).scalar_one()


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEvent]
    total: int
    page: int
    per_page: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def page_of(f: AuditFilter, page: int = 1) -> AuditPage:
    page = max(1, page)
    items = list(db.session.execute(
        _newest_first(f).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars())
    return AuditPage(items, count(f), page)


def details_json(details) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True) if details else ""


def _cell(value) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(f: AuditFilter) -> Iterator[str]:
    """The export, line by line: a BOM, the header, then every selected row, newest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield "\ufeff" + line(CSV_COLUMNS)
    for row in db.session.execute(_newest_first(f).execution_options(yield_per=500)).scalars():
        yield line([
            row.time.astimezone(BEIJING).isoformat(timespec="seconds"), _cell(row.event), _cell(row.outcome),
            _cell(row.actor), _cell(row.subject), _cell(row.client_address), details_json(row.details),
        ])


def record_export(f: AuditFilter, actor: str, rows: int) -> None:
    signals.staff_action.send(current_app._get_current_object(), subject=actor, actor=actor, outcome="success",
                              details={"action": "audit_exported", "filters": _filter_for_the_log(f), "rows": rows})


# --- pages ----------------------------------------------------------------------------------

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")

OUTCOME_LABELS = {"success": _l("Success"), "failure": _l("Failure"), "refused": _l("Refused")}

MESSAGES = {
    "invalid_characters": _l("A filter contains characters that cannot be accepted."),
    "filter_too_long": _l("Each filter may be at most 100 characters long."),
    "unknown_outcome": _l("Choose an outcome from the list."),
    "invalid_date": _l("Enter dates as YYYY-MM-DD."),
    "date_range_reversed": _l("The start date must not be after the end date."),
}


def _event_choices() -> list[SelectChoice]:
    names = sorted(s.name for s in signals.SECURITY_EVENTS)
    return [SelectChoice("", _l("All events")), *(SelectChoice(name, name) for name in names)]


class AuditFilterForm(BaseForm):
    event = SelectField(_l("Event"), choices=_event_choices, validate_choice=False)
    outcome = SelectField(_l("Outcome"), choices=[SelectChoice("", _l("All outcomes")),
                                   *(SelectChoice(k, v) for k, v in OUTCOME_LABELS.items())],
                          validate_choice=False)
    subject = StringField(_l("Subject"), render_kw={"maxlength": MAX_FILTER_LENGTH})
    actor = StringField(_l("Actor"), render_kw={"maxlength": MAX_FILTER_LENGTH})
    client_address = StringField(_l("Client address"), render_kw={"maxlength": MAX_FILTER_LENGTH})
    date_from = StringField(_l("From (date)"), render_kw={"type": "date"})
    date_to = StringField(_l("To (date)"), render_kw={"type": "date"})


def _filter_from_request() -> tuple[AuditFilterForm, AuditFilter | None, str | None]:
    form = AuditFilterForm(formdata=request.args, meta={"csrf": False})
    if not form.validate():
        return form, None, "invalid_characters"
    try:
        return form, parse_filter({name: form[name].data for name in AuditFilter.__dataclass_fields__}), None
    except AuditFilterError as error:
        return form, None, error.reason


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


def _refused_filter(form, reason: str):
    """The search page with the reason a filter was refused, and nothing found."""
    return render_template("admin/audit/index.html", form=form, result=None, reason=reason,
                           message=MESSAGES[reason], outcome_labels=OUTCOME_LABELS), 400


@bp.get("/")
@staff_required("audit.view")
def index():
    form, filters, reason = _filter_from_request()
    if reason:
        return _refused_filter(form, reason)
    return render_template("admin/audit/index.html", form=form, result=page_of(filters, _page_number()),
                           filters=filters.params(), reason=None, message=None, outcome_labels=OUTCOME_LABELS,
                           details_json=details_json, beijing=BEIJING)


@bp.get("/export.csv")
@staff_required("audit.view")
def export():
    form, filters, reason = _filter_from_request()
    if reason:
        return _refused_filter(form, reason)
    record_export(filters, current_staff().login, count(filters))
    stamp = services().clock.now().astimezone(BEIJING).strftime("%Y%m%d-%H%M%S")
    response = Response(stream_with_context(line.encode("utf-8") for line in csv_lines(filters)),
                        mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
