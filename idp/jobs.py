"""The durable job queue: rows in ``jobs``, run by `idp worker`, or inline in development.

A handler returns normally when done and raises to be retried later with backoff; after the
configured number of attempts the job is marked failed (and stays visible for staff).

Units of work (idp.unit_of_work): ``enqueue`` joins the caller's unit (the job exists when the
work that asked for it is committed); in the worker each job is one unit, committed after it
ran or failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from flask import current_app

from idp.extensions import db, services
from idp.models.oauth import Job

HANDLERS: dict[str, Callable[[dict], None]] = {}
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600)


def register(kind: str, fn: Callable[[dict], None]) -> None:
    """Jobs of ``kind`` are run by ``fn`` (from the owning feature's ``init_app``)."""
    HANDLERS[kind] = fn


def enqueue(kind: str, payload: dict) -> Job:
    job = Job(kind=kind, payload=payload, run_after=services().clock.now())
    db.session.add(job)
    db.session.flush()
    if current_app.config["JOBS_INLINE"]:
        run(job)
    return job


def run(job: Job) -> bool:
    max_attempts = current_app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    job.attempts += 1
    try:
        HANDLERS[job.kind](job.payload)
    except Exception as exc:  # a failed delivery is retried, never lost
        job.last_error = str(exc)[:1000]
        now = services().clock.now()
        if job.attempts >= max_attempts:
            job.failed_at = now
        else:
            delay = BACKOFF_SECONDS[min(job.attempts - 1, len(BACKOFF_SECONDS) - 1)]
            job.run_after = now + timedelta(seconds=delay)
        db.session.flush()
        return False
    job.done_at = services().clock.now()
    db.session.flush()
    return True


def run_due(limit: int = 100) -> int:
    """Run the jobs whose time has come; returns how many ran."""
    now = services().clock.now()
    due = db.session.execute(
        db.select(Job).where(Job.done_at.is_(None), Job.failed_at.is_(None), Job.run_after <= now)
        .order_by(Job.run_after).limit(limit).with_for_update(skip_locked=True)
    ).scalars().all()
    for job in due:
        run(job)
        db.session.commit()  # each job is a unit of work of its own
    return len(due)
