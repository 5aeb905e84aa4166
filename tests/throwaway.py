"""Throwaway services for the deployment and fault tests: a PostgreSQL cluster, Redis servers
and Sentinels, provider instances (`idp serve`) and nginx, each started by the test on free
loopback ports in a temporary directory, and stopped (or killed, or restarted) by it. Never the
machine's shared PostgreSQL or Redis: a fault test stops its services.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

IDP = str(Path(sys.executable).with_name("idp"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "Passw0rd!x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    """``check()`` until it returns a true value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a server's workers), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# --- PostgreSQL --------------------------------------------------------------------------------

class PostgresCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory, on a free port, trust authentication on
    loopback. initdb refuses root: as root the cluster belongs to the ``postgres`` system user."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL's server binaries are not installed ({PG_BIN})")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="idp-pg-"))
        self.data = self.dir / "data"
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("initdb refuses root and there is no postgres user to run it as")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync",
                  "-E", "UTF8", "--locale", "C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nfsync = off\nmax_connections = 60\n"
                       "shared_buffers = 16MB\n")
        self.start()

    def _run(self, *args) -> None:
        command = [str(a) for a in args]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "log", "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Redis ---------------------------------------------------------------------------------------

class RedisServer:
    """A private ``redis-server`` (no persistence) that the test may stop and start again on the
    same port; with ``replica_of``, a replica of another."""

    def __init__(self, port: int | None = None, replica_of: int | None = None) -> None:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="idp-redis-"))
        self.replica_of = replica_of
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "log")]
        if self.replica_of:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _port_open(self.port), 10, "redis-server answering")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash or a lost host: no goodbye to the clients
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinel:
    """``redis-server --sentinel`` watching the master ``service`` at ``master_port``; quick to
    decide (1 s down), quorum ``quorum``."""

    def __init__(self, master_port: int, service: str = "mymaster", quorum: int = 1) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="idp-sentinel-"))
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / 'log'}\n"
            f"sentinel monitor {service} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
            f"sentinel parallel-syncs {service} 1\n")
        self.process = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _port_open(self.port), 10, "redis-sentinel answering")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the provider ------------------------------------------------------------------------------

def provider_env(instance: Path, database_url: str, redis_url: str, **extra) -> dict:
    """The environment of an `idp` command or server on these services (cheap argon2id)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PROMETHEUS_")) and k != "PORT"}
    env.update(IDP_INSTANCE_DIR=str(instance), IDP_DATABASE_URL=database_url, IDP_REDIS_URL=redis_url,
               IDP_ARGON2_MEMORY_KIB="1024", IDP_ARGON2_TIME_COST="1", IDP_CAPTCHA="off",
               PYTHONDONTWRITEBYTECODE="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def idp(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([IDP, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


class Provider:
    """`idp serve` (granian, ``IDP_WORKERS`` workers) on a free port, once it answers /healthz."""

    def __init__(self, env: dict, workers: int = 1) -> None:
        self.port = free_port()
        self.env = dict(env, PORT=str(self.port), IDP_WORKERS=str(workers))
        self.log = Path(tempfile.mkstemp(prefix="idp-serve-", suffix=".log")[1])
        self.process = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([IDP, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for(self._healthy, 60, f"idp serve on {self.port}", interval=0.2)

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.output()
        with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response:
            return response.status == 200

    def workers(self) -> list[int]:
        return child_pids(self.process.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def close(self) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)


# --- nginx ---------------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """Debian's nginx in front of ``upstreams`` (ports), round robin, with the configuration of
    docs/deploy.md (``nginx_site``) plus a header naming the upstream that answered (tests only)."""

    def __init__(self, upstreams: list[int], port: int | None = None) -> None:
        if not os.path.exists(NGINX):
            pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run installs it)")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="idp-nginx-"))
        servers = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstreams)
        site = nginx_site(servers, listen=f"127.0.0.1:{self.port}", tls=False,
                          extra="        add_header X-Upstream $upstream_addr always;\n")
        (self.dir / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n"
            f"  access_log {self.dir}/access.log;\n"
            f"  client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;\n"
            f"  fastcgi_temp_path {self.dir}/fastcgi; uwsgi_temp_path {self.dir}/uwsgi; scgi_temp_path {self.dir}/scgi;\n"
            f"{site}}}\n")
        self.process = subprocess.Popen([NGINX, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: _port_open(self.port), 10, "nginx answering")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def nginx_site(upstream_servers: str, listen: str, tls: bool = True, extra: str = "") -> str:
    """The nginx configuration of docs/deploy.md: the upstream block and the server block. The test
    serves it on plain http to loopback (``tls=False``); production listens on 443 with TLS."""
    tls_lines = ("    ssl_certificate     /etc/ssl/idp/fullchain.pem;\n"
                 "    ssl_certificate_key /etc/ssl/idp/privkey.pem;\n") if tls else ""
    return (
        "upstream idp {\n"
        f"{upstream_servers}"
        "    keepalive 32;\n"
        "}\n"
        "server {\n"
        f"    listen {listen}{' ssl' if tls else ''};\n"
        f"{tls_lines}"
        "    client_max_body_size 2m;\n"
        "    location / {\n"
        "        proxy_pass http://idp;\n"
        "        proxy_http_version 1.1;\n"
        "        proxy_set_header Connection \"\";\n"
        "        proxy_set_header Host $http_host;\n"
        "        proxy_set_header X-Forwarded-For $remote_addr;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
        "        proxy_set_header X-Forwarded-Host $http_host;\n"
        "        proxy_set_header X-Request-ID $request_id;\n"
        "        proxy_next_upstream error timeout;\n"
        "        proxy_read_timeout 60s;\n"
        f"{extra}"
        "    }\n"
        "    location = /metrics { return 404; }\n"
        "}\n")


# --- a browser and a relying party over HTTP ---------------------------------------------------

REDIRECT_URI = "http://127.0.0.1:9/callback"


def setup_provider(env: dict) -> dict:
    """Schema, one person (``zhang_san``) and one trusted confidential client: {client_id, client_secret}."""
    import json

    idp(env, "db", "upgrade")
    idp(env, "users", "create", "--type", "natural", "--login", "zhang_san", "--password", PASSWORD,
        "--name", "张三", "--phone", "13800138000")
    out = idp(env, "clients", "create", "--name", "业务系统", "--redirect-uri", REDIRECT_URI, "--trusted",
              "--scope", "openid", "--scope", "profile", "--json")
    return json.loads(out.stdout.strip().splitlines()[-1])


def csrf_of(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def reason_of(html: str) -> str | None:
    import re

    match = re.search(r'data-reason="([^"]*)"', html)
    return match.group(1) if match else None


class Visitor:
    """One browser (a cookie jar) and the upstreams that answered each of its requests."""

    def __init__(self, base: str) -> None:
        import requests

        self.base = base
        self.http = requests.Session()
        self.answered_by: list[str] = []

    def request(self, method: str, path: str, **kwargs):
        url = path if path.startswith("http") else self.base + path
        response = self.http.request(method, url, allow_redirects=False, timeout=30, **kwargs)
        self.answered_by.append(response.headers.get("X-Upstream", ""))
        return response

    def login_page(self, path: str = "/login"):
        return self.request("GET", path)

    def post_login(self, html: str, password: str = PASSWORD, login_name: str = "zhang_san", path: str = "/login"):
        return self.request("POST", path, data={
            "csrf_token": csrf_of(html), "account_type": "natural", "login_name": login_name,
            "password": password, "captcha": ""})

    def authorize(self, client: dict, password: str = PASSWORD) -> str:
        """The authorization code flow through the login page; returns the code."""
        from urllib.parse import parse_qs, urlencode, urlsplit

        query = urlencode({"response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT_URI,
                           "scope": "openid profile", "state": "s1", "nonce": os.urandom(8).hex()})
        response = self.request("GET", f"/authorize?{query}")
        for _ in range(10):
            if response.status_code in (301, 302, 303):
                location = response.headers["Location"]
                if location.startswith(REDIRECT_URI):
                    params = parse_qs(urlsplit(location).query)
                    assert "code" in params, location
                    return params["code"][0]
                parts = urlsplit(location)
                response = self.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            assert 'name="password"' in response.text, response.text[:500]
            parts = urlsplit(response.url)
            response = self.post_login(response.text, password, path=parts.path + (f"?{parts.query}" if parts.query else ""))
            assert response.status_code in (302, 303), (response.status_code, reason_of(response.text))
        raise AssertionError("no code")


def exchange(base: str, client: dict, code: str):
    import requests

    return requests.post(f"{base}/token", data={"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": REDIRECT_URI},
                         auth=(client["client_id"], client["client_secret"]), timeout=30)


def userinfo(base: str, access_token: str):
    import requests

    return requests.get(f"{base}/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=30)
