"""The one base of the services' refusals."""

from __future__ import annotations


class Refused(Exception):
    """A service refused what it was asked, for a stated reason; nothing was changed.

    Every rule of the provider that says no raises a ``Refused`` (or a subclass named after its
    area: ``FieldError``, ``ClientError``, ``CaseError`` …), so a caller that only needs "refused,
    and why" catches this one class: the command line, the audit log, a JSON API.

    The reason-code convention:

    - ``reason`` is a stable snake_case code (``login_name_taken``, ``claimed_by_other``,
      ``redirect_uri_not_https``): part of the interface. Tests assert on it, pages map it to
      their translated copy (never show it raw to a citizen), and the audit log stores it. Renaming
      a code is a breaking change; add a new one instead.
    - A code names what is wrong from the caller's side, not the code path (``not_claimed``, not
      ``update_returned_zero_rows``), and carries no personal data and no value the caller sent.
    - ``field`` is set when the refusal concerns one input (a form field, a client metadata
      name), so a form can show the message beside it; otherwise ``None``.
    - Each area lists its codes in a module-level tuple (``REASONS``) or its docstring.
    - Extra facts a caller needs (``retry_after``, ``until``) are attributes of the subclass.

    ``str()`` is ``"field: reason"`` or ``"reason"``: fit for a log line or an operator's
    terminal, not for a citizen.
    """

    def __init__(self, reason: str, field: str | None = None, *, message: str | None = None) -> None:
        super().__init__(message if message is not None else f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class Unavailable(Exception):
    """A service the provider needs (``dependency``: ``store`` — Redis — or ``database``) did not
    answer. Never a refusal: nothing the user did is wrong, nothing was changed, and the same
    request will work once the service is back. Answered 503 (a page in the user's language, or
    JSON ``temporarily_unavailable``), with one log line for the operator and no traceback."""

    def __init__(self, dependency: str, error: BaseException | None = None) -> None:
        super().__init__(f"{dependency} unavailable: {error!r}"[:300])
        self.dependency = dependency
        self.error = error


def unavailable_dependency(error: BaseException) -> str | None:
    """``store`` or ``database`` when ``error`` says that service did not answer, else None.

    Redis: a refused or lost connection, a timeout, a server still loading its data, or a master
    demoted to replica by a failover (writes refused until the client finds the new master).
    The database: SQLAlchemy's OperationalError (connection refused or lost, the server
    shutting down or restarting) and its pool timing out."""
    if isinstance(error, Unavailable):
        return error.dependency
    import redis.exceptions
    import sqlalchemy.exc

    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                          redis.exceptions.ReadOnlyError)):
        return "store"
    if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError)):
        return "database"
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return "database"
    return None
