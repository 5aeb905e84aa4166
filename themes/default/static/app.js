/* Progressive enhancements of the login and registration pages; every page works without them. */
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // Login tabs: switch the posted account_type without a page load.
  function initTabs() {
    var tabs = document.querySelectorAll(".tabs [data-tab]");
    var hidden = document.getElementById("account_type");
    if (!tabs.length || !hidden) return;
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function (event) {
        event.preventDefault();
        tabs.forEach(function (t) { t.classList.remove("active"); t.setAttribute("aria-selected", "false"); });
        tab.classList.add("active");
        tab.setAttribute("aria-selected", "true");
        hidden.value = tab.getAttribute("data-tab");
      });
    });
  }

  // Captcha: a new image on click.
  function initCaptchas() {
    document.querySelectorAll("[data-captcha]").forEach(function (button) {
      button.addEventListener("click", function () {
        var img = button.querySelector("img");
        img.src = button.getAttribute("data-captcha") + "?t=" + Date.now();
      });
    });
  }

  // Password strength (密码强度): the same classes the server counts.
  function strength(password, login) {
    if (!password) return -1;
    var classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9\s]/].filter(function (re) { return re.test(password); }).length;
    if (password.length < 8 || classes < 3 || (login && password.toLowerCase() === login.toLowerCase())) return 0;
    if (password.length >= 12 && classes === 4) return 3;
    if (password.length >= 10 || classes === 4) return 2;
    return 1;
  }

  function initStrength() {
    document.querySelectorAll("[data-strength]").forEach(function (input) {
      var meter = document.getElementById(input.getAttribute("data-strength"));
      var login = document.getElementById(input.getAttribute("data-login-field"));
      var labels = JSON.parse(meter.getAttribute("data-labels"));
      function update() {
        var level = strength(input.value, login ? login.value : (input.getAttribute("data-login-value") || ""));
        meter.setAttribute("data-level", String(level));
        meter.querySelector(".strength-text").textContent = level < 0 ? "—" : labels[String(level)];
      }
      input.addEventListener("input", update);
      if (login) login.addEventListener("input", update);
      update();
    });
  }

  // SMS code: send, then count down before a resend is allowed.
  function initSendCode() {
    var button = document.getElementById("send-code");
    if (!button) return;
    var status = document.getElementById("send-code-status");
    var form = button.closest("form");
    function countdown(seconds) {
      button.disabled = true;
      var left = seconds;
      var wait = button.getAttribute("data-wait");
      button.textContent = wait.replace("{s}", left);
      var timer = setInterval(function () {
        left -= 1;
        if (left <= 0) {
          clearInterval(timer);
          button.disabled = false;
          button.textContent = button.getAttribute("data-label");
        } else {
          button.textContent = wait.replace("{s}", left);
        }
      }, 1000);
    }
    function show(message, ok) {
      status.textContent = message || "";
      status.className = ok ? "hint ok" : "error";
    }
    // Mark the fields the server named (answer.fields: {name: reason}); clear the others.
    function markFields(fields) {
      [["phone", phoneInput], ["captcha", captcha]].forEach(function (pair) {
        if (!pair[1]) return;
        if (fields && fields[pair[0]]) pair[1].setAttribute("aria-invalid", "true");
        else pair[1].removeAttribute("aria-invalid");
      });
    }
    var phoneInput = document.getElementById(button.getAttribute("data-phone"));
    var captcha = document.getElementById(button.getAttribute("data-captcha"));
    button.addEventListener("click", function () {
      var body = new URLSearchParams();
      body.set("csrf_token", form.querySelector("[name=csrf_token]").value);
      body.set("phone", phoneInput.value);
      if (captcha) body.set("captcha", captcha.value);
      button.disabled = true;
      fetch(button.getAttribute("data-url"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" }
      }).then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        // Anything but JSON is an error page (an expired form, a proxy's answer …): say so.
        if (type.indexOf("application/json") !== 0) return { ok: false, message: button.getAttribute("data-expired") };
        return response.json();
      }).then(function (answer) {
        show(answer.message, answer.ok);
        markFields(answer.fields);
        if (answer.ok || answer.retry_after) countdown(answer.retry_after || 60); else button.disabled = false;
        if (captcha) {
          captcha.value = "";
          var refresh = captcha.parentNode.querySelector("[data-captcha]");
          if (refresh) refresh.click();
        }
      }).catch(function () {
        show(button.getAttribute("data-failed"), false);
        button.disabled = false;
      });
    });
  }

  onReady(function () { initTabs(); initCaptchas(); initStrength(); initSendCode(); });
})();
