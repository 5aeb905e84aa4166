"""The "Get code" button's script (themes/default/static/app.js) against real answers of the
send-code endpoint, run in Node with a minimal stand-in for the page (no browser needed).

The answers are the provider's own (an expired form gets the HTML error page, a wrong captcha
a JSON refusal); the messages are read from the rendered registration page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from tests.conftest import csrf_token

NODE = shutil.which("node") or shutil.which("nodejs")
APP_JS = Path(__file__).resolve().parents[2] / "themes" / "default" / "static" / "app.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

# A page with just what initSendCode touches; fetch answers with the recorded response.
HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const input = JSON.parse(fs.readFileSync(0, "utf8"));

function element(id, attrs) {
  const el = {
    id, attrs: Object.assign({}, attrs || {}), listeners: {}, textContent: "", className: "",
    value: "", disabled: false, parentNode: null,
    getAttribute(name) { return name in this.attrs ? this.attrs[name] : null; },
    setAttribute(name, value) { this.attrs[name] = String(value); },
    removeAttribute(name) { delete this.attrs[name]; },
    addEventListener(type, fn) { this.listeners[type] = fn; },
    click() { if (this.listeners.click) this.listeners.click({ preventDefault() {} }); },
    querySelector() { return null; },
    closest() { return form; },
  };
  return el;
}
const csrf = element("csrf_token"); csrf.value = "token";
const form = element("register-form"); form.querySelector = () => csrf;
const phone = element("phone"); phone.value = "13800138000";
const captcha = element("sms-captcha"); captcha.value = "ABCD";
captcha.parentNode = { querySelector: () => null };
const status = element("send-code-status");
const button = element("send-code", input.button);
const byId = { "send-code": button, "send-code-status": status, "phone": phone, "sms-captcha": captcha };

const context = {
  document: {
    readyState: "complete",
    getElementById: (id) => byId[id] || null,
    querySelectorAll: () => [],
    addEventListener() {},
  },
  URLSearchParams,
  setInterval: () => 0, clearInterval() {},
  fetch: () => Promise.resolve({
    headers: { get: (name) => name.toLowerCase() === "content-type" ? input.contentType : null },
    json: () => Promise.resolve(JSON.parse(input.body)),
  }),
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(input.script, "utf8"), context);
button.click();
setTimeout(() => {
  process.stdout.write(JSON.stringify({
    status: status.textContent, statusClass: status.className, disabled: button.disabled,
    captchaInvalid: captcha.getAttribute("aria-invalid"), phoneInvalid: phone.getAttribute("aria-invalid"),
  }));
}, 50);
"""


def button_attributes(page: str) -> dict:
    tag = re.search(r'<button[^>]*id="send-code"[^>]*>', page).group(0)
    return {name: unescape(value) for name, value in re.findall(r'([a-z-]+)="([^"]*)"', tag)}


def run_script(button: dict, response) -> dict:
    payload = {"script": str(APP_JS), "button": button, "contentType": response.headers["Content-Type"],
               "body": response.get_data(as_text=True)}
    result = subprocess.run([NODE, "-e", HARNESS], input=json.dumps(payload), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_expired_form_shows_the_pages_expired_message_instead_of_failing_silently(app, client):
    page = client.get("/register/natural").get_data(as_text=True)
    button = button_attributes(page)
    assert button["data-expired"]
    answer = client.post("/register/send-code", data={"phone": "13800138000", "captcha": "ABCD",
                                                      "csrf_token": "expired"})
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    shown = run_script(button, answer)
    assert shown["status"] == button["data-expired"]
    assert shown["statusClass"] == "error"
    assert shown["disabled"] is False  # the user can try again after reloading


def test_a_json_refusal_shows_its_message_and_marks_the_named_field(app, client):
    token = csrf_token(client, "/register/natural")
    button = button_attributes(client.get("/register/natural").get_data(as_text=True))
    answer = client.post("/register/send-code", data={"phone": "13800138000", "captcha": "A" * 11,
                                                      "csrf_token": token})
    assert answer.is_json
    shown = run_script(button, answer)
    assert shown["status"] == answer.get_json()["message"]
    assert shown["captchaInvalid"] == "true"
    assert shown["phoneInvalid"] is None
