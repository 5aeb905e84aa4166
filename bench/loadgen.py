"""The load generator of `make bench`: one asyncio process, the same for every system measured.

A small HTTP/1.1 client over asyncio streams (keep-alive, Content-Length and chunked bodies,
a per-user cookie jar that honours Path, redirects followed by the scenarios themselves), so
that the generator costs little CPU beside the servers on a 2-core machine and needs nothing
outside the standard library. Each virtual user runs one operation after another until the
time or the request budget is spent; an operation is one request, or for the login scenario
the whole browser round (authorize → login form → login → code → token; the peer, like most
providers, goes through authorize again after the login).

`run()` reports operations per second, latency percentiles of successful operations, errors
(with a few samples), and the generator's own CPU time (resource.getrusage of this process).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

REQUEST_TIMEOUT = 30.0


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_list(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server has closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.host_header = f"{host}:{port}"

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes | None = None) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        for attempt in (0, 1):
            reused = self.writer is not None
            if not reused:
                await self._open()
            try:
                self.writer.write(payload)
                return await asyncio.wait_for(self._read(method), REQUEST_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                # A kept-alive connection the server closed while idle: send once more (the
                # request never reached the application). Anything else is an error.
                if not reused or attempt:
                    raise HttpError(f"connection: {exc!r}") from None
            except TimeoutError:
                self.close()
                raise HttpError("timeout") from None
        raise HttpError("unreachable")

    async def _read(self, method: str) -> Response:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = []
        for line in header_lines:
            key, _, value = line.partition(":")
            headers.append((key.strip().lower(), value.strip()))
        hdr = dict(headers)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hdr.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await self._trailers()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        elif "content-length" in hdr:
            body = await self.reader.readexactly(int(hdr["content-length"]))
        else:
            body = await self.reader.read()
            self.close()
        if hdr.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    async def _trailers(self) -> None:
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                return


class CookieJar:
    """Enough of RFC 6265 for one host: name, Path, deletion by Max-Age=0 / past Expires."""

    def __init__(self) -> None:
        self.cookies: dict[tuple[str, str], str] = {}

    def update(self, response: Response, request_path: str) -> None:
        for raw in response.header_list("set-cookie"):
            parts = [p.strip() for p in raw.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {}
            for part in parts[1:]:
                key, _, val = part.partition("=")
                attrs[key.strip().lower()] = val.strip()
            path = attrs.get("path") or request_path.rsplit("/", 1)[0] or "/"
            expired = attrs.get("max-age") == "0" or "1970" in attrs.get("expires", "") or value == ""
            if expired:
                self.cookies.pop((name, path), None)
            else:
                self.cookies[(name, path)] = value

    def header(self, path: str) -> str | None:
        path = path.split("?", 1)[0]
        matching = [(p, n, v) for (n, p), v in self.cookies.items()
                    if path == p or path.startswith(p.rstrip("/") + "/") or p == "/"]
        matching.sort(key=lambda item: -len(item[0]))
        return "; ".join(f"{n}={v}" for _, n, v in matching) or None


class Browser:
    """One virtual user: a connection and a cookie jar."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = Connection(host, port)
        self.jar = CookieJar()

    async def request(self, method: str, path: str, headers: dict | None = None,
                      form: dict | None = None, cookies: bool = True) -> Response:
        headers = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if cookies:
            cookie = self.jar.header(path)
            if cookie:
                headers["Cookie"] = cookie
        response = await self.conn.request(method, path, headers, body)
        if cookies:
            self.jar.update(response, path.split("?", 1)[0])
        return response

    def close(self) -> None:
        self.conn.close()


# -- HTML forms -------------------------------------------------------------------------------

class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = {"action": attrs.get("action") or "", "method": (attrs.get("method") or "get").lower(),
                             "inputs": {}}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attrs.get("name"):
            self._current["inputs"][attrs["name"]] = (attrs.get("type") or "text", attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def login_form(html: str) -> dict | None:
    """The first POST form with a password field: its action and its hidden inputs."""
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        if form["method"] == "post" and any(t == "password" for t, _ in form["inputs"].values()):
            return {"action": form["action"],
                    "hidden": {k: v for k, (t, v) in form["inputs"].items() if t == "hidden"}}
    return None


# -- the systems' protocol details ------------------------------------------------------------

@dataclass
class Target:
    """What the scenarios need to know about one system under test."""

    name: str
    host: str
    port: int
    paths: dict[str, str]        # discovery, jwks, authorize, token, userinfo, introspect
    client_id: str
    client_secret: str
    redirect_uri: str
    username: str
    password: str
    scope: str = "openid profile"
    auth_extra: dict[str, str] = field(default_factory=dict)    # e.g. resource for JWT access tokens
    token_extra: dict[str, str] = field(default_factory=dict)
    cc_extra: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)         # tokens prepared before the runs

    @property
    def basic(self) -> str:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class FlowError(Exception):
    pass


def _expect(response: Response, status: int | tuple[int, ...], what: str) -> Response:
    allowed = status if isinstance(status, tuple) else (status,)
    if response.status not in allowed:
        snippet = response.body[:160].decode("utf-8", "replace").replace("\n", " ")
        raise FlowError(f"{what}: HTTP {response.status} {snippet}")
    return response


async def full_login(browser: Browser, target: Target, auth_extra: dict | None = None,
                     token_extra: dict | None = None) -> dict:
    """authorize → login form → login → (authorize again, the peer; consent, none for these
    trusted clients) → code → token."""
    browser.jar = CookieJar()  # a new visitor each time
    state = f"s{time.monotonic_ns()}"
    query = {"response_type": "code", "client_id": target.client_id, "redirect_uri": target.redirect_uri,
             "scope": target.scope, "state": state, **target.auth_extra, **(auth_extra or {})}
    path = target.paths["authorize"] + "?" + urlencode(query)
    code = None
    form_seen = False
    response = await browser.request("GET", path)
    for _ in range(8):
        if response.status in (301, 302, 303, 307):
            location = response.header("location") or ""
            if location.startswith(target.redirect_uri):
                params = parse_qs(urlsplit(location).query)
                if "code" not in params:
                    raise FlowError(f"authorization error: {location[:200]}")
                if params.get("state", [None])[0] != state:
                    raise FlowError("state mismatch")
                code = params["code"][0]
                break
            path = _local(location, path)
            response = await browser.request("GET", path)
            continue
        _expect(response, 200, "page")
        form = login_form(response.body.decode("utf-8", "replace"))
        if form is None:
            consent = re.search(rb'name="consent"', response.body)
            raise FlowError("consent page shown" if consent else "no login form")
        if form_seen:
            raise FlowError("login form shown twice (login failed)")
        form_seen = True
        fields = dict(form["hidden"])
        fields.update(login_name=target.username, password=target.password)
        fields.setdefault("account_type", "natural")
        fields.setdefault("captcha", "")
        path = _local(form["action"] or path, path)
        # The answer redirects to the authorization request again, or (ours, as Keycloak)
        # straight to the client with the code.
        response = await browser.request("POST", path, form=fields)
        _expect(response, (302, 303), "login")
    if code is None:
        raise FlowError("no code after redirects")
    token = await browser.request(
        "POST", target.paths["token"], headers={"Authorization": target.basic},
        form={"grant_type": "authorization_code", "code": code, "redirect_uri": target.redirect_uri,
              **target.token_extra, **(token_extra or {})}, cookies=False)
    _expect(token, 200, "token")
    data = token.json()
    if "access_token" not in data or "id_token" not in data:
        raise FlowError("token response without access_token / id_token")
    return data


def _local(location: str, current: str) -> str:
    """A redirect target as a path on the same server."""
    absolute = urljoin("http://x" + current, location)
    parts = urlsplit(absolute)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- scenarios ----------------------------------------------------------------------------------

Op = Callable[[Browser, Target, int], Awaitable[None]]


async def op_discovery(b: Browser, t: Target, vu: int) -> None:
    r = _expect(await b.request("GET", t.paths["discovery"], cookies=False), 200, "discovery")
    if b'"issuer"' not in r.body:
        raise FlowError("no issuer in discovery")


async def op_jwks(b: Browser, t: Target, vu: int) -> None:
    r = _expect(await b.request("GET", t.paths["jwks"], cookies=False), 200, "jwks")
    if b'"keys"' not in r.body:
        raise FlowError("no keys in JWKS")


async def op_client_credentials(b: Browser, t: Target, vu: int) -> None:
    r = await b.request("POST", t.paths["token"], headers={"Authorization": t.basic},
                        form={"grant_type": "client_credentials", **t.cc_extra}, cookies=False)
    _expect(r, 200, "client_credentials")
    if r.json().get("access_token", "").count(".") != 2:
        raise FlowError("client_credentials token is not a JWT")


async def op_refresh(b: Browser, t: Target, vu: int) -> None:
    tokens = t.state["refresh_tokens"]
    current = tokens[vu % len(tokens)]
    r = await b.request("POST", t.paths["token"], headers={"Authorization": t.basic},
                        form={"grant_type": "refresh_token", "refresh_token": current}, cookies=False)
    _expect(r, 200, "refresh_token")
    new = r.json().get("refresh_token")
    if not new or new == current:
        raise FlowError("refresh token not rotated")
    tokens[vu % len(tokens)] = new


async def op_userinfo(b: Browser, t: Target, vu: int) -> None:
    r = await b.request("GET", t.paths["userinfo"],
                        headers={"Authorization": "Bearer " + t.state["userinfo_token"]}, cookies=False)
    _expect(r, 200, "userinfo")
    if b'"sub"' not in r.body:
        raise FlowError("no sub in userinfo")


async def op_introspection(b: Browser, t: Target, vu: int) -> None:
    r = await b.request("POST", t.paths["introspect"], headers={"Authorization": t.basic},
                        form={"token": t.state["introspection_token"]}, cookies=False)
    _expect(r, 200, "introspection")
    if r.json().get("active") is not True:
        raise FlowError("token not active")


async def op_login(b: Browser, t: Target, vu: int) -> None:
    await full_login(b, t)


async def op_hello(b: Browser, t: Target, vu: int) -> None:
    _expect(await b.request("GET", t.paths["hello"], cookies=False), 200, "hello")


SCENARIOS: dict[str, Op] = {
    "discovery": op_discovery,
    "jwks": op_jwks,
    "client_credentials": op_client_credentials,
    "refresh_token": op_refresh,
    "userinfo": op_userinfo,
    "introspection": op_introspection,
    "login": op_login,
    "hello": op_hello,
}


# -- running ------------------------------------------------------------------------------------

def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(op: Op, target: Target, concurrency: int, duration: float, max_ops: int,
               warmup: float, max_warmup: float, hooks: dict | None) -> dict:
    """Closed loop: every virtual user starts its next operation when the last one ends.

    Warm-up lasts `warmup` seconds and, beyond that, until every user has finished one
    operation (at most `max_warmup` seconds), so slow operations start the window in a steady
    state. The window then lasts `duration` seconds or until `max_ops` operations have ended;
    what ends inside it is counted (latency, errors); operations still running when it closes
    finish uncounted (a refresh-token chain is never cut in the middle)."""
    hooks = hooks or {}
    browsers = [Browser(target.host, target.port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    done_once = [False] * concurrency
    per_user = [0] * concurrency
    window = {"open": False, "closed": False, "start": 0.0, "end": 0.0, "cpu0": 0.0, "cpu1": 0.0}
    all_warm = asyncio.Event()
    full = asyncio.Event()
    counted = [0]

    def close_window() -> None:
        if window["open"] and not window["closed"]:
            window["closed"] = True
            window["end"] = time.perf_counter()
            window["cpu1"] = _cpu()
            if "end" in hooks:
                hooks["end"]()

    async def user(vu: int) -> None:
        b = browsers[vu]
        while not window["closed"]:
            t0 = time.perf_counter()
            try:
                await op(b, target, vu)
                failure = None
            except (FlowError, HttpError, ValueError, KeyError, OSError) as exc:
                failure = str(exc)[:200]
            t1 = time.perf_counter()
            if not done_once[vu]:
                done_once[vu] = True
                if all(done_once):
                    all_warm.set()
            if window["open"] and not window["closed"]:
                if failure is None:
                    latencies.append(t1 - t0)
                    per_user[vu] += 1
                else:
                    errors[failure] = errors.get(failure, 0) + 1
                counted[0] += 1
                if counted[0] >= max_ops:
                    close_window()
                    full.set()

    async def clock() -> None:
        await asyncio.sleep(warmup)
        try:
            await asyncio.wait_for(all_warm.wait(), max(0.0, max_warmup - warmup))
        except TimeoutError:
            pass
        if "start" in hooks:
            hooks["start"]()
        window.update(open=True, start=time.perf_counter(), cpu0=_cpu())
        try:
            await asyncio.wait_for(full.wait(), duration)
        except TimeoutError:
            pass
        close_window()

    tasks = [asyncio.create_task(user(i)) for i in range(concurrency)]
    await clock()
    await asyncio.gather(*tasks)
    for b in browsers:
        b.close()
    elapsed = window["end"] - window["start"]
    cpu_used = window["cpu1"] - window["cpu0"]
    latencies.sort()
    n_err = sum(errors.values())
    ms = lambda v: None if v is None else round(v * 1000, 3)
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 3),
        "ops": len(latencies),
        "errors": n_err,
        "error_samples": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:3]),
        "rps": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": ms(_percentile(latencies, 0.50)),
        "p95_ms": ms(_percentile(latencies, 0.95)),
        "p99_ms": ms(_percentile(latencies, 0.99)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "ops_per_user_min_max": [min(per_user), max(per_user)],
        "warm_all_users": all(done_once) if window["start"] else None,
        "loadgen_cpu_s": round(cpu_used, 3),
        "loadgen_cpu_pct": round(100 * cpu_used / elapsed, 1) if elapsed > 0 else 0.0,
    }


def run(scenario: str, target: Target, concurrency: int, duration: float = 5.0,
        max_ops: int = 50_000, warmup: float = 1.0, max_warmup: float = 20.0,
        hooks: dict | None = None) -> dict:
    """One scenario at one concurrency (see `_run`). `hooks` may hold "start" and "end"
    callables, called as the measuring window opens and closes (server CPU readings)."""
    return asyncio.run(_run(SCENARIOS[scenario], target, concurrency, duration, max_ops, warmup,
                            max_warmup, hooks))


def prepare_logins(target: Target, count: int, concurrency: int = 4, auth_extra: dict | None = None,
                   token_extra: dict | None = None, attempts: int = 3) -> list[dict]:
    """`count` full logins (token responses), to seed refresh-token chains and bearer tokens;
    a failed login is tried again (up to `attempts` times) before the run gives up."""

    async def go() -> list[dict]:
        sem = asyncio.Semaphore(concurrency)
        results: list[dict] = []
        failures: list[str] = []

        async def one() -> None:
            async with sem:
                for attempt in range(attempts):
                    b = Browser(target.host, target.port)
                    try:
                        results.append(await full_login(b, target, auth_extra, token_extra))
                        return
                    except (FlowError, HttpError, OSError, ValueError) as exc:
                        failures.append(str(exc)[:300])
                    finally:
                        b.close()

        await asyncio.gather(*(one() for _ in range(count)))
        if len(results) < count:
            raise FlowError(f"{target.name}: {count - len(results)} of {count} preparatory logins failed: "
                            f"{failures[:2]}")
        return results

    return asyncio.run(go())


if __name__ == "__main__":  # a quick manual run: python bench/loadgen.py URL (discovery at c=8)
    import sys

    url = urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000")
    tgt = Target("adhoc", url.hostname, url.port or 80, {"discovery": "/.well-known/openid-configuration"},
                 "", "", "", "", "")
    print(json.dumps(run("discovery", tgt, 8, duration=3.0)))
