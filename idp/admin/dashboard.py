"""The dashboard's figures, read from the audit log, the review queue and the SSO sessions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app
from markupsafe import Markup
from sqlalchemy import func

from idp.extensions import db, services
from idp.models.audit import AuditEvent
from idp.models.cases import PENDING, ReviewCase
from idp.models.oauth import SsoSession

BEIJING = timezone(timedelta(hours=8))


def _start_of_today() -> datetime:
    now = services().clock.now().astimezone(BEIJING)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


def _count(event: str, since: datetime) -> int:
    return db.session.execute(
        db.select(func.count(AuditEvent.id)).where(AuditEvent.event == event, AuditEvent.time >= since)
    ).scalar_one()


def stats() -> dict:
    today = _start_of_today()
    live_since = services().clock.now() - timedelta(seconds=current_app.config["SESSION_LIFETIME"])
    return {
        "sign_ins_today": _count("login_succeeded", today),
        "failures_today": _count("login_failed", today),
        "lockouts_today": _count("account_locked", today),
        "pending_cases": db.session.execute(
            db.select(func.count(ReviewCase.id)).where(ReviewCase.state == PENDING)).scalar_one(),
        "active_sessions": db.session.execute(
            db.select(func.count(SsoSession.id)).where(SsoSession.ended_at.is_(None),
                                                       SsoSession.last_seen_at >= live_since)).scalar_one(),
    }


def sign_ins_per_hour() -> list[tuple[datetime, int]]:
    """The last 24 whole hours, oldest first (Beijing time labels)."""
    now = services().clock.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=24)
    times = db.session.execute(
        db.select(AuditEvent.time).where(AuditEvent.event == "login_succeeded", AuditEvent.time >= start)
    ).scalars().all()
    buckets = [0] * 24
    for t in times:
        index = int((t - start).total_seconds() // 3600)
        if 0 <= index < 24:
            buckets[index] += 1
    return [(start + timedelta(hours=i), buckets[i]) for i in range(24)]


def hourly_chart_svg() -> Markup:
    """A bar chart drawn on the server: no script, nothing for the CSP to allow."""
    data = sign_ins_per_hour()
    peak = max((n for _, n in data), default=0) or 1
    width, height, bar = 720, 200, 30
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 30}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="0" y1="{height}" x2="{24 * bar}" y2="{height}" class="baseline"/>']
    for i, (hour, n) in enumerate(data):
        h = round(height * n / peak)
        x = i * bar + 2
        label = hour.astimezone(BEIJING).strftime("%H")
        parts.append(f'<rect x="{x}" y="{height - h}" width="{bar - 4}" height="{h}" class="bar">'
                     f'<title>{label}:00 — {n}</title></rect>')
        if i % 3 == 0:
            parts.append(f'<text x="{x + 4}" y="{height + 18}" class="axis">{label}</text>')
        if n:
            parts.append(f'<text x="{x + 2}" y="{height - h - 4}" class="value">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704  # only numbers and formatted hours go in, nothing a user typed
