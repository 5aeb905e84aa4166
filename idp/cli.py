"""The ``idp`` command. Machine-readable output is one line, the last line of stdout; logs go
to stderr (INTERFACES.md)."""

from __future__ import annotations

import json
import multiprocessing
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from idp import create_app, unit_of_work
from idp.errors import Refused


def _emit(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def main():
    """Unified identity provider of the science-and-technology government service platform.

    Each command is one unit of work (``idp.unit_of_work.command``): it commits once when it
    succeeds and leaves nothing written when it fails; `worker` commits each job, `serve` the
    signing keys it creates before the workers start."""


# --- users -------------------------------------------------------------------------------

@main.group()
def users():
    """Accounts of natural persons and legal entities."""


@users.command("create")
@click.option("--type", "account_type", type=click.Choice(["natural", "legal"]), required=True)
@click.option("--login", "login_name", required=True)
@click.option("--password", required=True)
@click.option("--name", help="the person's name; for legal accounts the contact person")
@click.option("--phone")
@click.option("--email")
@click.option("--uscc")
@click.option("--org-name")
@unit_of_work.command
def users_create(account_type, login_name, password, name, phone, email, uscc, org_name):
    """Create an account (the password policy and identifier checks apply)."""
    from idp.accounts.service import create_account
    from idp.security import identifiers

    profile = {"name": name, "email": email, "org_name": org_name}
    if phone:
        profile["phone"] = identifiers.normalise_mobile(phone)
        if profile["phone"] is None:
            raise click.UsageError("--phone is not a valid mobile number")
    if uscc:
        if account_type != "legal":
            raise click.UsageError("--uscc is for legal accounts")
        uscc = uscc.strip().upper()
        if not identifiers.is_valid_uscc(uscc):
            raise click.UsageError("--uscc has a wrong check character or format (GB 32100)")
        profile.update(uscc=uscc, org_region="domestic")
    try:
        account = create_account(account_type, login_name, password, **profile)
    except Refused as error:
        raise click.ClickException(str(error)) from None
    _log(f"created {account.account_type} account {account.login_name}")
    _emit({"sub": account.sub, "login_name": account.login_name, "account_type": account.account_type})


def _account(login_name: str):
    """The account named ``login_name`` (either type), or a usage error."""
    from idp.accounts.names import login_name_key, normalise_login_name
    from idp.accounts.service import find_account

    account = find_account(login_name_key(normalise_login_name(login_name)))
    if account is None:
        raise click.ClickException(f"no account {login_name}")
    return account


_OPERATOR = "cli"  # the audit log's actor for the operators' commands


def _staff_action(run, login_name: str) -> None:
    """One of the console's account actions (idp.admin.user_service), with its effects."""
    account = _account(login_name)
    try:
        outcome = run(account)
    except Refused as error:
        raise click.ClickException(str(error)) from None
    _log(f"{account.login_name}: {outcome}")


@users.command("disable")
@click.argument("login_name", metavar="LOGIN")
@unit_of_work.command
def users_disable(login_name):
    """Disable an account: login refused; its sessions, tokens and codes end at once and its
    clients are told by back-channel logout (the console's 禁用)."""
    from idp.admin import user_service

    _staff_action(lambda account: f"disabled, {user_service.disable(account, _OPERATOR)} sessions ended",
                  login_name)


@users.command("enable")
@click.argument("login_name", metavar="LOGIN")
@unit_of_work.command
def users_enable(login_name):
    """Enable a disabled account: it may sign in again (old tokens stay dead)."""
    from idp.admin import user_service

    _staff_action(lambda account: user_service.enable(account, _OPERATOR) or "enabled", login_name)


@users.command("lock")
@click.argument("login_name", metavar="LOGIN")
@click.option("--minutes", type=int, required=True, help="1 to 43200")
@unit_of_work.command
def users_lock(login_name, minutes):
    """Lock an account for N minutes: login refused until then; its sessions, tokens and codes
    end at once, as with the console's 锁定."""
    from idp.admin import user_service

    _staff_action(lambda account: "locked until " + user_service.lock(account, minutes, _OPERATOR)
                  .isoformat(timespec="seconds"), login_name)


@users.command("unlock")
@click.argument("login_name", metavar="LOGIN")
@unit_of_work.command
def users_unlock(login_name):
    """Lift a lock (staff's or the wrong-password lockout's) and forget the failures counted."""
    from idp.admin import user_service

    _staff_action(lambda account: user_service.unlock(account, _OPERATOR) or "unlocked", login_name)


@users.command("verify")
@click.argument("login_name", metavar="LOGIN")
@click.option("--json", "as_json", is_flag=True, help='print {"verification_status": …} as JSON')
@unit_of_work.command
def users_verify(login_name, as_json):
    """Run the configured real-name verifier on the account's current data, as 保存 in the user
    centre does, and apply its answer."""
    from idp.verification.service import verify_automatically

    account = _account(login_name)
    outcome = verify_automatically(account)
    _log(f"{account.login_name}: {outcome}")
    if as_json:
        _emit({"verification_status": account.verification_status})
    else:
        click.echo(account.verification_status)


# --- demo --------------------------------------------------------------------------------

@main.group()
def demo():
    """Demonstration data."""


@demo.command("seed")
@unit_of_work.command
def demo_seed():
    """Create the demo accounts of both types (idempotent)."""
    from idp.demo import seed

    lines = seed()
    for line in lines:
        _log(line)
    _emit({"created": sum(line.startswith("created") for line in lines)})


# --- clients -----------------------------------------------------------------------------

@main.group()
def clients():
    """Business systems registered as OpenID Connect clients."""


@clients.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--public", is_flag=True, help="no secret; PKCE (S256) required")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]))
@click.option("--scope", "scopes", multiple=True)
@click.option("--account-type", "account_types", multiple=True, type=click.Choice(["natural", "legal"]))
@click.option("--trusted", is_flag=True, help="first-party: no consent page")
@click.option("--post-logout-redirect-uri", "post_logout_uris", multiple=True)
@click.option("--backchannel-logout-uri")
@click.option("--initiate-login-uri")
@click.option("--auth-method", type=click.Choice(["client_secret_basic", "client_secret_post"]),
              default="client_secret_basic")
@click.option("--client-id", help="a chosen client id (default: random)")
@click.option("--json", "as_json", is_flag=True, help="print {client_id, client_secret} as JSON")
@unit_of_work.command
def clients_create(name, redirect_uris, public, grant_types, scopes, account_types, trusted,
                   post_logout_uris, backchannel_logout_uri, initiate_login_uri, auth_method,
                   client_id, as_json):
    """Register a client; its secret is printed once."""
    from idp import clients as registry

    spec = registry.ClientSpec(
        name=name, client_id=client_id, redirect_uris=list(redirect_uris),
        grant_types=list(grant_types) or ["authorization_code", "refresh_token"],
        scopes=list(scopes) or ["openid"],
        allowed_account_types=list(account_types) or ["natural", "legal"],
        token_endpoint_auth_method="none" if public else auth_method, trusted=trusted,
        post_logout_redirect_uris=list(post_logout_uris), backchannel_logout_uri=backchannel_logout_uri,
        initiate_login_uri=initiate_login_uri,
    )
    try:
        client, secret = registry.create(spec)
    except Refused as error:
        raise click.ClickException(str(error)) from None
    _log(f"created client {client.name} ({client.client_id})")
    result = {"client_id": client.client_id}
    if secret:
        result["client_secret"] = secret
    if as_json:
        _emit(result)
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")


@clients.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@unit_of_work.command
def clients_import(files):
    """Create or update clients from declaration files (clients/*.toml); prints new secrets."""
    from idp import clients as registry

    created = {}
    for path in files:
        try:
            client, secret = registry.import_declaration(registry.load_declaration(path))
        except Refused as error:
            raise click.ClickException(f"{path}: {error}") from None
        _log(f"{path}: {client.client_id} ({client.name})")
        if secret:
            created[client.client_id] = secret
    _emit({"client_secrets": created})


@clients.command("rotate-secret")
@click.argument("client_id")
@unit_of_work.command
def clients_rotate_secret(client_id):
    """A new secret; the old one keeps working for IDP_CLIENT_SECRET_GRACE seconds."""
    from idp import clients as registry

    client = registry.find(client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    _emit({"client_id": client_id, "client_secret": registry.rotate_secret(client)})


@clients.command("initial-token")
@click.option("--expires-in", type=click.IntRange(1, 365 * 86400), default=86400, show_default=True,
              help="seconds the token stays valid")
@click.option("--json", "as_json", is_flag=True, help="print {initial_access_token} as JSON")
@unit_of_work.command
def clients_initial_token(expires_in, as_json):
    """An initial access token for RFC 7591 dynamic registration: one registration, printed once."""
    from idp import clients as registry

    row, token = registry.issue_initial_access_token_for_seconds(expires_in, actor="cli")
    _log(f"initial access token {row.id}: one registration, valid until {row.expires_at.isoformat()}")
    if as_json:
        _emit({"initial_access_token": token})
    else:
        click.echo(f"initial_access_token: {token}")


# --- signing keys ------------------------------------------------------------------------

@main.group()
def keys():
    """Token signing keys."""


@keys.command("rotate")
@unit_of_work.command
def keys_rotate():
    """Publish new signing keys; old ones stay in the JWKS until their tokens expire."""
    from idp import signals
    from idp.oauth import keys as signing

    new = signing.rotate()
    signals.signing_key_rotated.send(current_app._get_current_object(), subject="jwks", actor="cli",
                                     details={"kids": new})
    _emit({"kids": new})


# --- background jobs ---------------------------------------------------------------------

@main.command("worker")
@click.option("--once", is_flag=True, help="run the due jobs once and exit")
@click.option("--interval", type=float, default=2.0)
@with_appcontext
def worker(once, interval):
    """Run background jobs (back-channel logouts, SMS and e-mail notices, real-name retries …) from
    the durable queue."""
    import time

    from idp import jobs
    from idp.oauth import backchannel  # noqa: F401  (registers its job handler)

    from idp.delegations import service as delegations_service

    while True:
        with unit_of_work.unit():
            delegations_service.note_expiries()  # audit and back-channel logout of expiries
        _purge_if_due()
        ran = jobs.run_due()
        if ran:
            _log(f"ran {ran} job(s)")
        if once:
            _emit({"ran": ran})
            return
        time.sleep(interval)


def _purge_if_due() -> None:
    """Housekeeping at most every IDP_PURGE_INTERVAL (idp.ops.housekeeping); a failure is
    logged and waits for the next interval, the jobs go on."""
    from idp.extensions import db
    from idp.ops import housekeeping

    try:
        with unit_of_work.unit():
            counts = housekeeping.purge_if_due(after_batch=db.session.commit)
    except Exception:
        current_app.logger.exception("the purge failed; it is tried again after IDP_PURGE_INTERVAL")
        return
    if counts is not None:
        _log(f"purged {counts}")


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
@click.option("--json", "as_json", is_flag=True, help="print the rows per table as one JSON line")
@unit_of_work.command
def purge(dry_run, as_json):
    """Delete expired codes, dead refresh-token families, old SSO sessions and old jobs
    (IDP_PURGE_RETENTION, IDP_PURGE_JOBS_RETENTION); never the audit log."""
    from idp.extensions import db, services
    from idp.ops import housekeeping

    # Deliberately one commit per batch, not one unit for the whole purge: a purge after years
    # deletes millions of rows, and one transaction would hold their locks (and its undo) to
    # the end. Every batch stands on its own; an interrupted purge is simply run again.
    counts = housekeeping.purge_expired(services().clock.now(), dry_run=dry_run, actor="cli",
                                        after_batch=(lambda: None) if dry_run else db.session.commit)
    if as_json:
        _emit(counts)
    else:
        for table, count in counts.items():
            click.echo(f"{table}: {count}")


# --- delegation (INTERFACES.md "idp delegations") ------------------------------------------

@main.group()
def delegations():
    """Units' authorisations of persons to act for them (代办)."""


def _account_named(login_name: str):
    from idp.accounts.names import login_name_key, normalise_login_name
    from idp.accounts.service import find_account

    account = find_account(login_name_key(normalise_login_name(login_name)))
    if account is None:
        raise click.ClickException(f"no account {login_name}")
    return account


def _delegation_json(d) -> dict:
    from idp.delegations import service

    last = service.last_day(d)
    return {"delegation_id": d.id, "unit": d.unit.login_name if d.unit else None, "uscc": d.unit_uscc,
            "person": d.person.login_name, "clients": None if d.all_clients else list(d.client_ids),
            "role": d.role, "from": service.first_day(d).isoformat(), "until": last.isoformat() if last else None,
            "status": d.status, "state": service.state(d), "source": d.source}


@delegations.command("grant")
@click.option("--unit", "unit_login", required=True, help="login name of the unit (legal account)")
@click.option("--person", "person_login", required=True, help="login name of the natural person")
@click.option("--client", "client_ids", multiple=True, help="a client id (repeat); none: every system that allows the delegation scope")
@click.option("--until", "until", help="last day of validity, YYYY-MM-DD; none: no end")
@click.option("--json", "as_json", is_flag=True, help="print {delegation_id} as JSON")
@unit_of_work.command
def delegations_grant(unit_login, person_login, client_ids, until, as_json):
    """Record an authorisation (already accepted: an operator records a signed paper one)."""
    from idp.delegations import service

    unit, person = _account_named(unit_login), _account_named(person_login)
    try:
        terms = service.Terms(tuple(client_ids) or None, None, service.parse_day(until, "until"))
        delegation, _ = service.grant(unit, person, terms, source=service.SOURCE_CLI, actor="cli")
    except Refused as error:
        raise click.ClickException(str(error)) from None
    _emit({"delegation_id": delegation.id}) if as_json else _log(f"granted {delegation.id}")


@delegations.command("revoke")
@click.argument("delegation_id")
@unit_of_work.command
def delegations_revoke(delegation_id):
    """End an authorisation: every token issued while acting under it stops working at once."""
    from idp.delegations import service

    try:
        service.revoke(service.find(delegation_id), actor="cli")
    except Refused as error:
        raise click.ClickException(str(error)) from None
    service.deliver_inline()
    _emit({"delegation_id": delegation_id, "status": "revoked"})


@delegations.command("list")
@click.option("--unit", "unit_login")
@click.option("--person", "person_login")
@click.option("--json", "as_json", is_flag=True)
@unit_of_work.command
def delegations_list(unit_login, person_login, as_json):
    """The authorisations of a unit or of a person (one JSON list)."""
    from idp.delegations import service
    from idp.extensions import db
    from idp.models.delegations import Delegation

    if unit_login:
        rows = service.of_unit(_account_named(unit_login))
    elif person_login:
        rows = service.of_person(_account_named(person_login))
    else:
        rows = list(db.session.execute(db.select(Delegation).order_by(Delegation.created_at)).scalars())
    _emit([_delegation_json(d) for d in rows])


# --- staff -------------------------------------------------------------------------------

@main.group()
def admin():
    """Staff accounts of the console."""


@admin.command("create")
@click.option("--login", "login_name", required=True)
@click.option("--role", type=click.Choice(["superadmin", "client_manager", "reviewer", "support"]),
              required=True)
@click.option("--name")
@unit_of_work.command
def admin_create(login_name, role, name):
    """Create a staff account; prints its one-time enrolment URL (last line)."""
    from idp.admin import staff as staff_service

    try:
        staff, token = staff_service.create(login_name, role, name=name, created_by="cli")
    except Refused as error:
        raise click.ClickException(str(error)) from None
    _log(f"created {role} {staff.login}; the enrolment link is valid for "
         f"{current_app.config['STAFF_ENROLMENT_TTL'] // 3600} h and works once")
    click.echo(staff_service.enrolment_url(token))


# --- personal data -----------------------------------------------------------------------

@main.group()
def pii():
    """Personal-data encryption keys."""


@pii.command("rotate-key")
@click.option("--retire-old", is_flag=True, help="drop older keys once every row is re-encrypted")
@unit_of_work.command
def pii_rotate_key(retire_old):
    """Make a new encryption key active and re-encrypt every personal field with it."""
    from idp.security.key_rotation import rotate_pii_key

    result = rotate_pii_key(retire_old=retire_old)
    _log(f"active key {result['active']}, {result['rows']} rows re-encrypted")
    _emit(result)


# --- serving -----------------------------------------------------------------------------

APP_FACTORY = "idp:create_app"


@main.command("serve")
@click.option("--workers", type=int, default=None, help="default: IDP_WORKERS, else one per core")
@with_appcontext
def serve(workers):
    """Run the production server (IDP_SERVER: granian, or gunicorn) with the same configuration."""
    run_server(APP_FACTORY, workers)


def run_server(target: str, workers: int | None = None) -> None:
    """Serve the WSGI app that ``target`` ("module:factory") builds in each worker, on the
    configured server (IDP_SERVER), address, workers and access log: what `idp serve` does with
    the provider's own factory. Needs an application context (the configuration); returns when
    the server has stopped (SIGTERM / SIGINT).

    The workers' metrics meet in a directory made fresh for this start (idp.ops.metrics); the
    access log is the provider's own (idp.ops), so the servers' access logs stay off."""
    import logging

    from idp.extensions import db
    from idp.oauth import keys as signing
    from idp.ops import logs, metrics

    cfg = current_app.config
    logs.configure(cfg["LOG_FORMAT"])
    log = logging.getLogger("idp.server")
    signing.ensure_keys()  # before the workers start, so they never race to create keys
    # This process only supervises: end its transaction and close its connections before the
    # workers start, or it would sit "idle in transaction" for the server's life (holding back
    # VACUUM, locking signing_keys against a migration) on a socket the workers inherit.
    db.session.commit()
    db.session.remove()
    db.engine.dispose()
    if cfg["REDIS_URL"].startswith("memory://"):
        workers = 1
        log.warning("IDP_REDIS_URL=memory:// keeps sessions in-process: serving with ONE worker")
    else:
        workers = workers or cfg["WORKERS"] or multiprocessing.cpu_count()
    server = cfg["SERVER"]
    metrics_dir, made = metrics.prepare_multiprocess_dir()
    log.info(f"serving {cfg['ISSUER']} on {cfg['BIND']}:{cfg['PORT']} with {workers} worker(s) ({server})",
             extra={"event": "server_starting", "server": server, "workers": workers, "metrics_dir": metrics_dir})
    try:
        if server == "gunicorn":
            _run_gunicorn(cfg, target, workers)
        else:
            _run_granian(cfg, target, workers)
    finally:
        if made:
            metrics.remove_multiprocess_dir(metrics_dir)


def load_wsgi_app(target: str):
    """Import "module:factory" and call the factory: run in each worker process (a plain
    function of a string, so it also pickles for the "spawn" start method)."""
    import gc
    import importlib

    module_name, _, factory = target.partition(":")
    app = getattr(importlib.import_module(module_name), factory or "create_app")()
    # What exists now lives as long as the worker (modules, the app, its caches): the cyclic
    # collector need never look at it again. Its full collections had walked some 137,000 such
    # objects in every worker, about 60 ms each, in the middle of requests (bench/PROFILE.md).
    gc.collect()
    gc.freeze()
    return app


def _granian_worker_app(target: str):
    """``load_wsgi_app`` in a granian worker, which first blocks SIGINT. Ctrl-C in a terminal
    signals the whole process group, and a worker that gets SIGINT and then its master's SIGTERM
    can hang until killed after workers_kill_timeout (granian 2.8.9: 13 of 40 measured stops on
    a loaded machine; 0 of 70 with SIGINT blocked). Blocked, only the master acts on Ctrl-C,
    and it stops each worker with one SIGTERM."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # inherited by the server's threads
    return load_wsgi_app(target)


def _server_log_config(cfg, loggers: dict[str, str]) -> dict | None:
    """The server's own lines as JSON when IDP_LOG_FORMAT=json; its usual text otherwise."""
    if cfg["LOG_FORMAT"] != "json":
        return None
    from idp.ops.logs import server_dictconfig

    config = server_dictconfig(loggers)
    config["root"] = {"level": "WARNING", "handlers": []}  # gunicorn's defaults name a root handler
    return config


def _run_granian(cfg, target: str, workers: int) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    Server(
        target,
        address=cfg["BIND"],
        port=cfg["PORT"],
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=cfg["THREADS"],  # Python threads per worker
        http=HTTPModes.http1,  # behind the TLS proxy; no cleartext HTTP/2 (h2c) surface
        websockets=False,  # none in WSGI
        log_access=False,  # the provider writes its own (IDP_ACCESS_LOG, with the request id)
        log_dictconfig=_server_log_config(cfg, {"_granian": "stdout", "granian.access": "stdout"}),
        respawn_failed_workers=True,  # as gunicorn does; a crash loop still stops the server
        workers_kill_timeout=30,  # gunicorn's graceful_timeout: then a stuck worker is killed
    ).serve(target_loader=_granian_worker_app)  # called with `target` in each worker


def _run_gunicorn(cfg, target: str, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{cfg['BIND']}:{cfg['PORT']}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", cfg["THREADS"])
            self.cfg.set("accesslog", None)  # the provider writes its own (IDP_ACCESS_LOG)
            self.cfg.set("logconfig_dict", _server_log_config(cfg, {"gunicorn.error": "stderr"}) or {})
            self.cfg.set("timeout", 60)

        def load(self):
            return load_wsgi_app(target)

    Server().run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
