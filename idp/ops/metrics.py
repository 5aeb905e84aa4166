"""Prometheus metrics of the provider, multi-process aware.

Under `idp serve` every worker is a process of its own: ``PROMETHEUS_MULTIPROC_DIR`` (set up by
``prepare_multiprocess_dir`` before the workers start) makes each write its samples to files in
that directory, and ``/metrics``, whichever worker answers it, adds up the files of all. Without
it (tests, a single process) the samples stay in the app's own registry.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The token, userinfo and introspection endpoints answer in about a millisecond, sign-ins in
# tens (argon2id): finer buckets at the low end than prometheus_client's defaults.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
# RFC 6749 §5.2 and the extensions the provider speaks; anything else is counted as "other".
TOKEN_ERRORS = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "server_error", "temporarily_unavailable",
})
_REASON = re.compile(r"[a-z][a-z0-9_]{0,40}")


def reason_label(value) -> str:
    """A reason code as a label value: stable snake_case codes pass, anything else is "other"
    (a label must never take values a client chooses)."""
    return value if isinstance(value, str) and _REASON.fullmatch(value) else "other"


class Metrics:
    """The app's metrics; signal subscribers and the WSGI layer update them."""

    def __init__(self, app) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        # prometheus_client chooses where values live when it is imported; a server master that
        # imported it before the directory was set up must not hand in-memory values to its
        # forked workers (gunicorn forks after loading the configuration).
        values.ValueClass = values.get_value_class()
        r = self.registry
        self.requests = Histogram(
            "idp_http_request_duration_seconds", "Requests by endpoint (URL rule) and status, with their latency",
            ("endpoint", "status"), buckets=LATENCY_BUCKETS, registry=r)
        self.logins = Counter("idp_logins", "Sign-ins by kind of account, outcome and reason code",
                              ("kind", "outcome", "reason"), registry=r)
        self.token_requests = Counter("idp_token_requests", "Token endpoint requests by grant type and outcome",
                                      ("grant_type", "outcome", "error"), registry=r)
        self.sms = Counter("idp_sms_sends", "SMS sends by outcome (sent, refused by a cap, gateway unavailable)",
                           ("outcome", "purpose", "reason"), registry=r)
        # One per live worker: its file goes when the worker dies (``sweep_dead_workers``).
        self.workers = Gauge("idp_workers", "Server worker processes alive", registry=r,
                             multiprocess_mode="livesum")
        self.workers.set(1)
        self._request_children: dict[tuple[str, str], Histogram] = {}
        self._token_children: dict[tuple[str, str, str], Counter] = {}
        if not self.multiprocess_dir:
            r.register(JobQueueCollector(app))

    def observe_request(self, endpoint: str, status: str, seconds: float) -> None:
        """One histogram observation; the labelled child is looked up once per pair."""
        key = (endpoint, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(endpoint, status)
        child.observe(seconds)

    def count_token_request(self, grant_type: str, outcome: str, error: str) -> None:
        """One token endpoint answer; the labelled child is looked up once per triple."""
        key = (grant_type, outcome, error)
        child = self._token_children.get(key)
        if child is None:
            child = self._token_children[key] = self.token_requests.labels(grant_type, outcome, error)
        child.inc()

    def exposition(self) -> bytes:
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        sweep_dead_workers(self.multiprocess_dir)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(JobQueueCollector(self.app))
        return generate_latest(registry)


class JobQueueCollector:
    """The durable job queue's depth, read from the database at scrape time (the queue is
    shared by every worker and instance: one count, not a sum per process)."""

    def __init__(self, app) -> None:
        self.app = app

    def collect(self):
        from sqlalchemy import func

        from idp.extensions import db
        from idp.models.oauth import Job

        family = GaugeMetricFamily("idp_jobs", "Background jobs by state (pending: not yet done; failed: given up)",
                                   labels=("state",))
        try:
            with self.app.app_context():
                pending = db.session.scalar(db.select(func.count(Job.id)).where(
                    Job.done_at.is_(None), Job.failed_at.is_(None)))
                failed = db.session.scalar(db.select(func.count(Job.id)).where(Job.failed_at.is_not(None)))
                db.session.remove()
        except Exception:  # the database is down: /readyz says so; the other metrics still answer
            self.app.logger.warning("job queue depth unavailable", exc_info=True)
            return
        family.add_metric(("pending",), pending)
        family.add_metric(("failed",), failed)
        yield family


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_dead_workers(path: str) -> None:
    """Drop the live-gauge files of workers that have died (a crash, a respawn). Counters and
    histograms of dead workers stay: their counts happened and a total never goes down."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), path)


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """A fresh directory for this server start, exported to the workers. The operator's own
    ``PROMETHEUS_MULTIPROC_DIR`` is emptied of the last start's files; otherwise a private
    temporary directory is made (``created`` True: the caller removes it when the server stops)."""
    path = os.environ.get(MULTIPROC_ENV)
    created = not path
    if created:
        path = tempfile.mkdtemp(prefix="idp-metrics-")
    else:
        os.makedirs(path, exist_ok=True)
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)
    os.environ[MULTIPROC_ENV] = path
    return path, created


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
