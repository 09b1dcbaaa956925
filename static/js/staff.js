/* Autoriza, firm pages: small progressive enhancements (every page works without this file).
 *
 * - Forms with data-confirm ask before submitting (revoke, remove, retry).
 * - On the dashboard: "select every failed row" and a live count of the ticked rows; both survive the
 *   htmx refresh that replaces queued/running rows.
 * Loaded as a static file because the Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (form.id === "rerun-form" && selectedPicks().length === 0) return; // the server explains
    if (!window.confirm(question)) {
      event.preventDefault();
    }
  });

  function picks() {
    return Array.prototype.slice.call(document.querySelectorAll("input.rerun-pick"));
  }

  function selectedPicks() {
    return picks().filter(function (box) { return box.checked; });
  }

  function refreshSelection() {
    var all = picks();
    var chosen = selectedPicks().length;
    var master = document.getElementById("select-all-failed");
    var counter = document.getElementById("selected-count");
    if (master) {
      master.disabled = all.length === 0;
      master.checked = all.length > 0 && chosen === all.length;
      master.indeterminate = chosen > 0 && chosen < all.length;
    }
    if (counter) {
      // Failed rows without a checkbox: their certificate is gone (the row says so). Same words as
      // the server's first rendering (onboarding.views.staff.dashboard._bulk_hint).
      var blocked = document.querySelectorAll("tr[data-rerun-blocked]").length;
      var blockedText = blocked === 1
        ? "1 cliente con error no se puede reintentar: falta su certificado."
        : blocked + " clientes con error no se pueden reintentar: falta su certificado.";
      if (all.length === 0) {
        counter.textContent = blocked ? blockedText : "No hay clientes con error en esta página.";
      } else if (chosen === 0) {
        counter.textContent = "Marque los clientes con error que quiere intentar de nuevo." + (blocked ? " " + blockedText : "");
      } else {
        counter.textContent = chosen === 1 ? "1 cliente seleccionado." : chosen + " clientes seleccionados.";
      }
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.id === "select-all-failed") {
      picks().forEach(function (box) { box.checked = target.checked; });
    }
    if (target.id === "select-all-failed" || target.classList.contains("rerun-pick")) {
      refreshSelection();
    }
  });

  // Rows replaced by the live refresh may gain or lose a checkbox.
  document.addEventListener("htmx:afterSettle", refreshSelection);
  document.addEventListener("DOMContentLoaded", refreshSelection);
  if (document.readyState !== "loading") refreshSelection();
})();
