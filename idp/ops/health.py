"""Readiness: do the database and the ephemeral store answer?"""

from __future__ import annotations

import logging

from sqlalchemy import text

log = logging.getLogger("idp.ops")


def readiness(app) -> dict[str, str]:
    """Each dependency → "ok" or the kind of failure (an exception class name: the page is
    public, so no addresses or messages; those go to the log when the state changes)."""
    from idp.extensions import db

    checks = {}
    with app.app_context():
        try:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = type(error).__name__
            _log_failure(app, "database", error)
        try:
            app.extensions["idp.services"].store.get("readyz")
            checks["store"] = "ok"
        except Exception as error:
            checks["store"] = type(error).__name__
            _log_failure(app, "store", error)
    _remember(app, checks)
    return checks


def _log_failure(app, dependency: str, error: Exception) -> None:
    """One line when a dependency stops answering, not one per probe (a probe comes every few
    seconds, and an outage would flood the log)."""
    state = app.extensions.setdefault("idp.readiness", {})
    if state.get(dependency, "ok") == "ok":
        log.error("dependency unavailable", extra={"event": "dependency_unavailable",
                                                   "dependency": dependency, "error": repr(error)[:300]})


def _remember(app, checks: dict[str, str]) -> None:
    state = app.extensions.setdefault("idp.readiness", {})
    for dependency, result in checks.items():
        if result == "ok" and state.get(dependency, "ok") != "ok":
            log.info("dependency available again", extra={"event": "dependency_available",
                                                          "dependency": dependency})
        state[dependency] = result


def note_unavailable(dependency: str, error: BaseException, path: str) -> None:
    """A request answered 503 because ``dependency`` (``store`` or ``database``) did not answer
    (idp.errors.Unavailable): its transaction rolled back, so that nothing half-done is kept,
    and one line for the operator, without a traceback (the cause is outside the provider)."""
    from idp.extensions import db

    try:
        db.session.rollback()
    except Exception:  # noqa: S110  # nosec B110  # the connection is gone: the pool replaces it
        pass
    log.error("dependency unavailable: answered 503", extra={
        "event": "dependency_unavailable", "dependency": dependency, "path": path, "error": repr(error)[:300]})
