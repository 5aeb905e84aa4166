"""Every setting of the provider, its default and why it exists.

Precedence (INTERFACES.md): environment variable > the TOML file named by ``IDP_CONFIG`` >
built-in default. The server and every ``idp`` command build their configuration here, so a
command run with the same environment acts on the same database and store.
"""

from __future__ import annotations

import os
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "on", "true", "yes"}:
        return True
    if text in {"0", "off", "false", "no", ""}:
        return False
    raise ValueError(f"expected on/off, got {value!r}")


def _on_off(value: Any) -> str:
    text = "on" if value is True else "off" if value is False else str(value).strip().lower()
    if text not in {"on", "off"}:
        raise ValueError(f"expected 'on' or 'off', got {value!r}")
    return text


SERVERS = ("granian", "gunicorn")
MAIL_SENDERS = ("outbox", "smtp", "off")


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
    return text
LOG_FORMATS = ("text", "json")


def _log_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in LOG_FORMATS:
        raise ValueError(f"expected 'text' or 'json', got {value!r}")
    return text


def _server(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in SERVERS:
        raise ValueError(f"expected {' or '.join(map(repr, SERVERS))}, got {value!r}")
    return text


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    doc: str
    parse: Callable[[Any], Any] = str

    @property
    def env(self) -> str:
        return self.key if self.key == "PORT" else f"IDP_{self.key}"


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", "development", "development or production; production refuses unsafe defaults"),
    Setting("PORT", 5000, "port of `make run` / `idp serve`; also the default issuer's port", int),
    Setting("BIND", "127.0.0.1", "address `idp serve` listens on"),
    Setting("ISSUER", None, "issuer URL exactly as published; default http://127.0.0.1:$PORT"),
    Setting("DATABASE_URL", None, "SQLAlchemy URL; default SQLite under instance/"),
    Setting("REDIS_URL", "memory://", "ephemeral store; memory:// is in-process (one worker)"),
    Setting("REDIS_PREFIX", "idp:", "prefix of every key this provider writes to Redis"),
    Setting("REDIS_SENTINELS", "", "host:port,host:port of Redis Sentinels: the store then asks them for the master "
            "of IDP_REDIS_SENTINEL_SERVICE and follows a failover; IDP_REDIS_URL still gives the database number and "
            "password (docs/deploy.md)"),
    Setting("REDIS_SENTINEL_SERVICE", "mymaster", "the master's name the Sentinels monitor (IDP_REDIS_SENTINELS)"),
    Setting("SECRET_KEY", None, "signs CSRF tokens; default generated once into instance/"),
    Setting("INSTANCE_DIR", str(PROJECT_ROOT / "instance"), "generated keys, SQLite, SMS outbox"),
    Setting("THEME_DIR", str(PROJECT_ROOT / "themes" / "default"), "templates, static, translations"),
    Setting("DEFAULT_LOCALE", "zh_CN", "UI language when the user picked none"),
    Setting("CAPTCHA", "on", "image captcha on the login page and before SMS sends", _on_off),
    Setting("CAPTCHA_TTL", 300, "seconds an image captcha stays valid", int),
    Setting("CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE", 30, "captcha images one address may fetch per minute", int),
    Setting("SMS_GATEWAY", "outbox", "outbox (JSON lines in instance/) or http"),
    Setting("SMS_HTTP_URL", "", "URL of the SMS operator's HTTP interface"),
    Setting("SMS_HTTP_SECRET", "", "shared HMAC secret of the SMS operator's interface"),
    Setting("SMS_HTTP_TIMEOUT", 5.0, "seconds before an SMS send counts as unavailable", float),
    Setting("MAIL_SENDER", None, "mail sender: outbox (JSON lines in instance/mail-outbox.jsonl), smtp, or off (no "
            "e-mail channel); default outbox in development, off in production", lambda v: _choice(v, MAIL_SENDERS)),
    Setting("MAIL_FROM", "", "sender address of the provider's e-mails (IDP_MAIL_SENDER=smtp)"),
    Setting("MAIL_SMTP_HOST", "", "SMTP relay host (IDP_MAIL_SENDER=smtp)"),
    Setting("MAIL_SMTP_PORT", 587, "SMTP relay port: 587 with STARTTLS, 465 with tls", int),
    Setting("MAIL_SMTP_TLS", "starttls", "starttls (upgrade on the submission port) or tls (TLS from the first byte); "
            "plain SMTP is not offered", lambda v: _choice(v, ("starttls", "tls"))),
    Setting("MAIL_SMTP_USERNAME", "", "SMTP login, empty for none"),
    Setting("MAIL_SMTP_PASSWORD", "", "SMTP password"),
    Setting("MAIL_SMTP_TIMEOUT", 10.0, "seconds before a mail send counts as unavailable", float),
    Setting("MAIL_SMTP_CA_FILE", "", "CA bundle that signs the relay's certificate; empty: the system's", str),
    Setting("RECOVERY_LOOKUPS_PER_ADDRESS", 30, "检索登录名 / 检索单位名称 look-ups one client address may make per hour", int),
    Setting("RECOVERY_SENDS_PER_ADDRESS_PER_DAY", 30, "recovery codes and links (SMS or e-mail) one client address may "
            "request per day, on top of the SMS caps per phone and per address", int),
    Setting("RECOVERY_MAILS_PER_ADDRESS_PER_DAY", 5, "reset links and confirmation codes one e-mail address may "
            "receive per day", int),
    Setting("RECOVERY_LINK_TTL", 1800, "seconds a password-reset link sent by e-mail stays valid (at most 1800)", int),
    Setting("RECOVERY_ANSWER_FLOOR", 0.5, "seconds a recovery send answers in at the least, whether or not the "
            "phone or e-mail is the account's (the answer's timing must not tell)", float),
    Setting("RECOVERY_APPEAL_DOCUMENT_DAYS", 30, "days after the decision on a password appeal before its documents "
            "are deleted", float),
    Setting("VERIFIER", "local", "real-name verifier: local (check digits + registry file) or http (national interface)"),
    Setting("VERIFIER_URL", "", "URL of the national real-name verification interface (IDP_VERIFIER=http)"),
    Setting("VERIFIER_SECRET", "", "shared HMAC secret of the national verification interface"),
    Setting("VERIFIER_TIMEOUT", 5.0, "seconds before one verification request counts as unavailable", float),
    Setting("VERIFIER_RETRIES", 1, "further attempts after a verification request found the interface unavailable", int),
    Setting("VERIFIER_REGISTRY", "", "optional JSON or CSV file of known identities for the local verifier"),
    Setting("UPLOAD_MAX_PER_MINUTE", 10, "document submissions (上传自然人信息 / 上传法人信息) one account may make per minute", int),
    Setting("SMS_CODE_TTL", 300, "seconds an SMS verification code stays valid", int),
    Setting("SMS_RESEND_SECONDS", 60, "seconds before a new code may be sent to one phone", int),
    Setting("SMS_MAX_PER_PHONE_PER_DAY", 10, "codes one phone may receive per day", int),
    Setting("SMS_MAX_PER_ADDRESS_PER_HOUR", 20, "codes one client address may request per hour", int),
    Setting("SMS_CODE_MAX_ATTEMPTS", 5, "wrong entries before a code is void", int),
    Setting("LOGIN_MAX_FAILURES", 5, "failed passwords before an account is locked", int),
    Setting("LOGIN_FAILURE_WINDOW", 900, "seconds over which failed passwords are counted", int),
    Setting("LOGIN_LOCK_SECONDS", 900, "seconds an account stays locked", int),
    Setting("LOGIN_MAX_FAILURES_PER_ADDRESS", 30, "failures one client address may make per window", int),
    Setting("REGISTRATION_MAX_REFUSALS_PER_ADDRESS", 20,
            "refused registrations (wrong code, taken name or document, invalid form) one client address may "
            "make per window before registration is refused to it at once: each refusal answers a question", int),
    Setting("REGISTRATION_REFUSAL_WINDOW", 3600, "seconds over which refused registrations are counted", int),
    Setting("SESSION_LIFETIME", 28800, "seconds a sign-in session lives without activity", int),
    Setting("ANONYMOUS_SESSION_LIFETIME", 1800, "seconds a session without a sign-in lives without activity",
            int),
    Setting("LEGACY_IMPORT_BATCH", 2000, "records the legacy import decides and commits together", int),
    Setting("LEGACY_TORCH_CLIENTS", "gaoqi,kexiaoqi",
            "client ids of 高企认定 and 科小企评价: a Torch unit held by a person is owed their authorisation"),
    Setting("LOOKUP_MAX_PER_ADDRESS", 20, "account lookups (/account-lookup) one address may make per window", int),
    Setting("LOOKUP_WINDOW", 3600, "seconds of the account lookup's per-address window", int),
    Setting("REGISTRATION_REVIEW", False, "on: new accounts wait for staff review before login", _bool),
    Setting("PII_KEYRING", None, "JSON keyring file of personal-data keys; default instance/"),
    Setting("ARGON2_TIME_COST", 2, "argon2id iterations (OWASP: m=19 MiB, t=2, p=1)", int),
    Setting("ARGON2_MEMORY_KIB", 19456, "argon2id memory in KiB", int),
    Setting("ARGON2_PARALLELISM", 1, "argon2id lanes", int),
    Setting("PASSWORD_FLOOR_REFRESH", 60,
            "seconds a process trusts its list of the password hash parameters accounts hold "
            "(the timing floor of legacy hashes); 0 reads it at every check", int),
    Setting("CODE_TTL", 60, "seconds an authorization code may wait for the token request", int),
    Setting("ACCESS_TOKEN_TTL", 3600, "seconds a JWT access token is valid", int),
    Setting("ID_TOKEN_TTL", 3600, "seconds an ID token is valid", int),
    Setting("REFRESH_TOKEN_TTL", 30 * 86400, "seconds a refresh token (family) is valid", int),
    Setting("PURGE_RETENTION", 7 * 86400, "seconds an expired code, refresh-token family or SSO session is kept "
            "past its end before `idp purge` / the worker deletes it (a done job too)", int),
    Setting("PURGE_JOBS_RETENTION", 30 * 86400, "seconds a failed job stays for staff before it is purged", int),
    Setting("PURGE_INTERVAL", 3600, "seconds between purges in `idp worker` (one across all workers); 0 = never "
            "in the worker (run `idp purge` yourself)", int),
    Setting("SIGNING_ALG", "RS256", "default ID-token and access-token signing algorithm (RS256 or ES256)"),
    Setting("CLIENT_SECRET_GRACE", 7 * 86400, "seconds a rotated client secret keeps working", int),
    Setting("BACKCHANNEL_TIMEOUT", 5.0, "seconds to wait for a client's back-channel logout endpoint", float),
    Setting("BACKCHANNEL_MAX_ATTEMPTS", 5, "attempts of a job (a logout token, a notice, a real-name retry) before it is failed", int),
    Setting("JOBS_INLINE", None, "run background jobs in the request; default on in development, off in production "
            "(refused there: calls on someone's behalf run in `idp worker`, never inside a user's request)", _bool),
    Setting("ALLOW_LOOPBACK_HTTP", None, "outbound calls (back-channel logout, SMS, verifier) may use plain http to "
            "loopback, for the demo systems; default on in development, refused in production", _bool),
    Setting("OUTBOUND_MAX_BYTES", 64 * 1024, "largest answer read from an outside service or relying party; "
            "reading stops there and the call fails", int),
    Setting("DELEGATION_VERIFIED_UNITS_ONLY", True, "only real-name verified units may authorise people to act for "
            "them (用户授权管理), and an authorisation stops working while its unit is not verified", _bool),
    Setting("DELEGATION_REQUIRE_ACCEPTANCE", True, "a person must accept a unit's new authorisation before it is "
            "offered at sign-in (authorisations recorded by the CLI or the legacy import are accepted already)", _bool),
    Setting("NATIONAL_ISSUER", "", "issuer URL of the national government service platform (an upstream OpenID "
            "Connect provider, discovery at its /.well-known/openid-configuration); the login page offers it only "
            "when this, the client id and the secret are all set (docs/national-login.md)"),
    Setting("NATIONAL_CLIENT_ID", "", "this provider's client id at the national platform"),
    Setting("NATIONAL_CLIENT_SECRET", "", "this provider's client secret at the national platform (client_secret_basic)"),
    Setting("NATIONAL_SCOPES", "openid profile email phone verification", "scopes asked of the national platform"),
    Setting("NATIONAL_TIMEOUT", 5.0, "seconds before a call to the national platform counts as unavailable", float),
    Setting("NATIONAL_METADATA_TTL", 3600, "seconds the national platform's discovery document and keys are kept", int),
    Setting("NATIONAL_VERIFIED_CLAIM", "verification_status", "the upstream claim that says the person is real-name "
            "verified; empty: never take the upstream's word"),
    Setting("NATIONAL_VERIFIED_VALUES", "verified_auto verified_manual", "values of that claim (space-separated) that "
            "make the account verified_auto, with the national platform as evidence"),
    Setting("STAFF_ENROLMENT_TTL", 86400, "seconds a staff enrolment link stays valid", int),
    Setting("STAFF_SESSION_IDLE", 1800, "seconds of inactivity after which staff must sign in again", int),
    Setting("MAX_FORM_BYTES", 2 * 1024 * 1024, "largest request body accepted", int),
    Setting("TRUSTED_PROXIES", 0, "reverse proxies in front whose X-Forwarded-For is trusted", int),
    Setting("SERVER", "granian", "HTTP server of `idp serve`: granian (measured fastest, bench/PROFILE.md) or gunicorn", _server),
    Setting("WORKERS", 0, "server workers for `idp serve`; 0 = one per core (measured best for this CPU-bound server, bench/)", int),
    Setting("THREADS", 4, "request threads per worker of `idp serve` (measured, bench/PROFILE.md)", int),
    Setting("LOG_FORMAT", "text", "text, or json: every line the server writes is one JSON object (docs/operations.md)", _log_format),
    Setting("METRICS_TOKEN", "", "bearer token that opens /metrics to other than loopback addresses; empty: loopback only (at least 32 characters in production)"),
    Setting("ACCESS_LOG", False, "one access log line per request on stdout, written by the provider with its request id (either server; not for /healthz, /readyz, /metrics); off by default, as in both servers: the reverse proxy in front keeps the access log, and logging each request cost 6-8 % of a cheap request's CPU (bench/PROFILE.md)", _bool),
)


class ConfigurationError(RuntimeError):
    """A setting is missing, malformed or unsafe for the environment."""


def _read_toml(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    return {str(k).upper(): v for k, v in data.items()}


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolve every setting; ``overrides`` (tests) win over everything else."""
    env = os.environ
    from_file = _read_toml(env["IDP_CONFIG"]) if env.get("IDP_CONFIG") else {}
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    resolved: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in overrides:
            raw = overrides[setting.key]
        elif setting.env in env:
            raw = env[setting.env]
        elif setting.key in from_file:
            raw = from_file[setting.key]
        else:
            raw = setting.default
        try:
            resolved[setting.key] = None if raw is None else setting.parse(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{setting.env}: {exc}") from exc
    for key, value in overrides.items():
        resolved.setdefault(key, value)
    _derive(resolved)
    _check_production(resolved)
    return resolved


def _derive(cfg: dict[str, Any]) -> None:
    instance = Path(cfg["INSTANCE_DIR"])
    instance.mkdir(parents=True, exist_ok=True)
    if not cfg["ISSUER"]:
        cfg["ISSUER"] = f"http://127.0.0.1:{cfg['PORT']}"
    cfg["ISSUER"] = cfg["ISSUER"].rstrip("/")
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance / 'idp.db'}"
    if not cfg["PII_KEYRING"]:
        cfg["PII_KEYRING"] = str(instance / "pii-keyring.json")
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key", cfg["ENV"], cfg["LOG_FORMAT"])
    cfg["REDIS_SENTINEL_ADDRESSES"] = _sentinels(cfg["REDIS_SENTINELS"], cfg["REDIS_URL"])
    cfg["SECURE_COOKIES"] = cfg["ISSUER"].startswith("https://") or cfg["ENV"] == "production"
    development = cfg["ENV"] == "development"
    if cfg["JOBS_INLINE"] is None:
        cfg["JOBS_INLINE"] = development
    if cfg["ALLOW_LOOPBACK_HTTP"] is None:
        cfg["ALLOW_LOOPBACK_HTTP"] = development
    if cfg["MAIL_SENDER"] is None:
        cfg["MAIL_SENDER"] = "outbox" if development else "off"


def _sentinels(value: str, redis_url: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (IPv6 as ``[::1]:26379``) → [(host, port)]."""
    addresses = []
    for item in (part.strip() for part in str(value or "").split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"IDP_REDIS_SENTINELS: expected host:port[,host:port…], got {item!r}")
        addresses.append((host, int(port)))
    if addresses and not redis_url.startswith(("redis://", "rediss://")):
        raise ConfigurationError("IDP_REDIS_SENTINELS needs IDP_REDIS_URL=redis://… (its database number and "
                                 "password; the Sentinels name the host)")
    return addresses


def _instance_secret(path: Path, env: str, log_format: str = "text") -> str:
    if not path.exists():
        if env == "production":
            raise ConfigurationError("IDP_SECRET_KEY must be set in production")
        # Created private (0600) in one step, never readable by others, not even for a moment;
        # O_EXCL: of two processes starting at once, one writes and the other reads its key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            value = secrets.token_urlsafe(48)
            with os.fdopen(fd, "w") as handle:
                handle.write(value)
            _warn(f"generated a development secret key into {path}", log_format)
            return value
    import time

    for _ in range(100):  # another process may be writing it this very moment
        existing = path.read_text().strip()
        if existing:
            return existing
        time.sleep(0.01)
    raise ConfigurationError(f"the secret key file {path} is empty")


def _check_outbound(cfg: dict[str, Any]) -> None:
    """The operator's service URLs follow the rules of every outbound call (idp.security.outbound):
    checked here without DNS, and again, with the address, at every call."""
    from idp.security.outbound import OutboundRefused, Policy, check_configured

    if cfg["OUTBOUND_MAX_BYTES"] < 1024:
        raise ConfigurationError("IDP_OUTBOUND_MAX_BYTES must be at least 1024")
    policy = Policy.from_config(cfg)
    for kind_key, kind, url_key in (("SMS_GATEWAY", "http", "SMS_HTTP_URL"), ("VERIFIER", "http", "VERIFIER_URL"),
                                    ("NATIONAL_ISSUER", cfg.get("NATIONAL_ISSUER"), "NATIONAL_ISSUER")):
        if cfg.get(kind_key) == kind and cfg.get(url_key):
            try:
                check_configured(cfg[url_key], policy)
            except OutboundRefused as exc:
                raise ConfigurationError(f"IDP_{url_key} is refused ({exc.reason}): https only in production; "
                                         "plain http only to loopback in development with "
                                         "IDP_ALLOW_LOOPBACK_HTTP on") from exc


def _warn(message: str, log_format: str) -> None:
    """A warning before logging is set up, in the configured log format (IDP_LOG_FORMAT)."""
    if log_format == "json":
        import json
        from datetime import datetime, timezone

        ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        print(json.dumps({"ts": ts, "level": "warning", "logger": "idp.settings", "message": message}),
              file=sys.stderr)
    else:
        print(f"warning: {message}", file=sys.stderr)


def _check_production(cfg: dict[str, Any]) -> None:
    if cfg["ENV"] not in {"development", "production"}:
        raise ConfigurationError("IDP_ENV must be development or production")
    _check_outbound(cfg)
    if not 60 <= cfg["RECOVERY_LINK_TTL"] <= 1800:
        raise ConfigurationError("IDP_RECOVERY_LINK_TTL must be between 60 and 1800 seconds")
    for name in ("PURGE_RETENTION", "PURGE_JOBS_RETENTION", "PURGE_INTERVAL"):
        if cfg[name] < 0:  # a negative retention would delete live codes and sessions
            raise ConfigurationError(f"IDP_{name} must not be negative")
    if cfg["ENV"] != "production":
        return
    if cfg["ALLOW_LOOPBACK_HTTP"]:
        raise ConfigurationError("IDP_ALLOW_LOOPBACK_HTTP=on is refused when IDP_ENV=production")
    if cfg["JOBS_INLINE"]:
        raise ConfigurationError("IDP_JOBS_INLINE=on is refused when IDP_ENV=production: back-channel calls "
                                 "run in `idp worker`, not inside a user's request")
    if cfg["CAPTCHA"] == "off":
        raise ConfigurationError("IDP_CAPTCHA=off is refused when IDP_ENV=production")
    if not cfg["ISSUER"].startswith("https://"):
        raise ConfigurationError("IDP_ISSUER must be an https URL in production")
    if cfg["DATABASE_URL"].startswith("sqlite"):
        raise ConfigurationError("production needs IDP_DATABASE_URL (PostgreSQL)")
    if cfg["SMS_GATEWAY"] == "outbox":
        raise ConfigurationError("production needs IDP_SMS_GATEWAY=http")
    if cfg["MAIL_SENDER"] == "outbox":
        raise ConfigurationError("IDP_MAIL_SENDER=outbox is refused in production: use smtp, or off")
    if cfg["MAIL_SENDER"] == "smtp" and not (cfg["MAIL_SMTP_HOST"] and cfg["MAIL_FROM"]):
        raise ConfigurationError("IDP_MAIL_SENDER=smtp needs IDP_MAIL_SMTP_HOST and IDP_MAIL_FROM")
    if cfg["METRICS_TOKEN"] and len(cfg["METRICS_TOKEN"]) < 32:
        raise ConfigurationError("IDP_METRICS_TOKEN must be at least 32 characters in production")
    if cfg.get("VERIFIER") == "local":
        raise ConfigurationError("production needs IDP_VERIFIER=http (the national interface)")
