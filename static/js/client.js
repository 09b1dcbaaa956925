/* Autoriza, client pages: small progressive enhancements. Everything works without this file.
   Loaded as a static file because the Content-Security-Policy forbids inline scripts. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    // Password fields: reveal the "Mostrar" buttons only when they can work.
    document.querySelectorAll("[data-toggle-password]").forEach(function (button) {
      button.hidden = false;
    });
    // After a refused submit, move focus to the error summary so it is read first.
    var summary = document.querySelector("[data-focus-on-load]");
    if (summary) summary.focus();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle-password]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("aria-controls"));
    if (!input) return;
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", show ? "true" : "false");
    button.setAttribute("aria-label", show ? "Ocultar la contraseña" : "Mostrar la contraseña");
    button.textContent = show ? "Ocultar" : "Mostrar";
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // Long submits (opening a certificate): say so, and stop a second click from posting twice.
    var busy = form.getAttribute("data-busy-label");
    if (busy) {
      var submit = form.querySelector("button[type=submit]");
      if (submit) {
        // Hide a revealed password again so it is not left on screen during the wait.
        form.querySelectorAll("[data-toggle-password]").forEach(function (toggle) {
          var input = document.getElementById(toggle.getAttribute("aria-controls"));
          if (input) input.type = "password";
          toggle.setAttribute("aria-pressed", "false");
          toggle.textContent = "Mostrar";
        });
        window.setTimeout(function () {
          submit.disabled = true;
          submit.textContent = busy;
        }, 0);
      }
    }
  });

  // Status page: the server answers 304 when nothing changed; never swap an empty or identical body.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var xhr = detail.xhr;
    if (!xhr) return;
    if (xhr.status === 304) {
      detail.shouldSwap = false;
      return;
    }
    var etag = xhr.getResponseHeader("ETag");
    var target = detail.target;
    if (etag && target && target.getAttribute("data-etag") === etag) detail.shouldSwap = false;
  });

  // Announce the one-line summary to screen readers when it changes.
  document.addEventListener("htmx:afterSwap", function () {
    var status = document.getElementById("job-status");
    var announcer = document.getElementById("job-announcer");
    if (!status || !announcer) return;
    var text = status.getAttribute("data-announce") || "";
    if (announcer.textContent !== text) announcer.textContent = text;
  });
})();
