"""The durable job queue: rows in ``jobs``, run by `idp worker`, or inline in development.

A handler returns normally when done and raises to be retried later with backoff; after the
configured number of attempts the job is marked failed (it stays visible for staff: the
``idp_jobs{state="failed"}`` gauge and the table) and ``job_failed`` is audited.

Units of work (idp.unit_of_work): ``add`` and ``enqueue`` join the caller's unit (the job exists
when the work that asked for it is committed, and not otherwise); in the worker each job is one
unit, committed after it ran or failed. ``run_after_unit`` is the one way a request or command
runs jobs itself: once its unit has ended (back-channel logouts in development, the first
attempt of a notice).

Secrets a job needs (a phone number, an e-mail address, a temporary password) go in ``sealed``:
the column is encrypted with the personal-data keyring (re-encrypted by ``idp pii
rotate-key`` like every encrypted column), loaded only when the job runs, and emptied once the
job is done or has failed. The clear ``payload`` holds references and what the audit log names.

``about``: jobs of one kind about one thing (an account) replace one another: adding one marks
the older ones still waiting as done (``last_error`` "superseded"), and a job that finds a newer
one about the same thing does nothing.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import Callable

from flask import current_app

from idp import signals, unit_of_work
from idp.extensions import db, services
from idp.models.oauth import Job

HANDLERS: dict[str, Callable[[dict], None]] = {}
# How the audit log names the subject of a failed job, by kind (default: the payload's "subject").
SUBJECTS: dict[str, Callable[[dict], str | None]] = {}
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600)
SUPERSEDED = "superseded"


def register(kind: str, fn: Callable[[dict], None], subject: Callable[[dict], str | None] | None = None) -> None:
    """Jobs of ``kind`` are run by ``fn`` (from the owning feature's ``init_app``)."""
    HANDLERS[kind] = fn
    if subject is not None:
        SUBJECTS[kind] = subject


def first_backoff() -> timedelta:
    return timedelta(seconds=BACKOFF_SECONDS[0])


def add(kind: str, payload: dict, *, sealed: dict | None = None, about: str | None = None,
        run_after=None) -> Job:
    """A job row in the caller's transaction, never run here. ``sealed``: what must not be
    stored in clear (see the module's docstring)."""
    now = services().clock.now()
    if about is not None:
        supersede(kind, about)
    job = Job(kind=kind, payload=payload, about=about, run_after=run_after or now,
              sealed=json.dumps(sealed, ensure_ascii=False) if sealed is not None else None)
    db.session.add(job)
    db.session.flush()
    return job


def enqueue(kind: str, payload: dict) -> Job:
    job = add(kind, payload)
    if current_app.config["JOBS_INLINE"]:
        run(job)
    return job


def run_after_unit(ids: list[int] | None = None) -> None:
    """Run the jobs ``ids`` (None: every due job) once the current unit of work has ended:
    after its commit they are rows; after a rollback they are gone and nothing runs. Outside a
    unit (a test or a shell in a bare application context) nothing runs here: the worker runs
    them (``keep`` would run them at once, before the caller's commit)."""
    if unit_of_work.in_unit():
        unit_of_work.keep(functools.partial(run_due, ids=ids))


def supersede(kind: str, about: str) -> None:
    """The jobs of ``kind`` about ``about`` still waiting are not needed any more."""
    now = services().clock.now()
    # A waiting job a worker holds right now (locked) is skipped: it checks for newer ones
    # itself before it runs (``run``), and its handler re-checks what it acts on.
    older = db.session.execute(
        db.select(Job).where(Job.kind == kind, Job.about == about, Job.done_at.is_(None), Job.failed_at.is_(None))
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for job in older:
        job.done_at, job.last_error, job.sealed = now, SUPERSEDED, None


def _newer_exists(job: Job) -> bool:
    return db.session.execute(
        db.select(Job.id).where(Job.kind == job.kind, Job.about == job.about, Job.id > job.id,
                                Job.failed_at.is_(None)).limit(1)
    ).first() is not None


def _arguments(job: Job) -> dict:
    arguments = dict(job.payload or {})
    if job.sealed:
        arguments["sealed"] = json.loads(job.sealed)  # decrypted here: a key problem fails the job
    return arguments


def _subject(job: Job) -> str | None:
    describe = SUBJECTS.get(job.kind)
    if describe is not None:
        try:
            return describe(job.payload or {})
        except Exception:  # naming the subject must not hide the failure itself
            return None
    return (job.payload or {}).get("subject")


def run(job: Job) -> bool:
    max_attempts = current_app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    if job.about is not None and _newer_exists(job):
        job.done_at, job.last_error, job.sealed = services().clock.now(), SUPERSEDED, None
        db.session.flush()
        return True
    job.attempts += 1
    try:
        HANDLERS[job.kind](_arguments(job))
    except Exception as exc:  # a failed delivery is retried, never lost
        job.last_error = str(exc)[:1000]
        now = services().clock.now()
        if job.attempts >= max_attempts:
            job.failed_at = now
            job.sealed = None
            signals.job_failed.send(current_app._get_current_object(), subject=_subject(job) or f"job:{job.id}",
                                    outcome="failure", details={"job_id": job.id, "kind": job.kind,
                                                                "attempts": job.attempts, "error": job.last_error[:200]})
        else:
            delay = BACKOFF_SECONDS[min(job.attempts - 1, len(BACKOFF_SECONDS) - 1)]
            job.run_after = now + timedelta(seconds=delay)
        db.session.flush()
        return False
    job.done_at = services().clock.now()
    job.sealed = None
    db.session.flush()
    return True


def run_due(limit: int = 100, ids: list[int] | None = None) -> int:
    """Run the jobs whose time has come (only those of ``ids`` when given); returns how many ran.

    Each job is claimed on its own (a row lock, skipped when another worker or request holds
    it) and checked again under that lock: a job runs once at a time, and never again once
    done, whoever else runs the queue meanwhile (a worker's commit after one job releases
    nothing it has not finished)."""
    now = services().clock.now()
    due = (Job.done_at.is_(None), Job.failed_at.is_(None), Job.run_after <= now)
    query = db.select(Job.id).where(*due)
    if ids is not None:
        if not ids:
            return 0
        query = query.where(Job.id.in_(ids))
    candidates = db.session.execute(query.order_by(Job.run_after, Job.id).limit(limit)).scalars().all()
    ran = 0
    for job_id in candidates:
        job = db.session.execute(
            db.select(Job).where(Job.id == job_id, *due).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if job is not None:
            run(job)
            ran += 1
        db.session.commit()  # each job is a unit of work of its own
    return ran
