/* Autoriza, every page with live status (the client's job page, the firm's dashboard and job pages).
 *
 * A live poll that fails (the server restarting, the network down) is retried by htmx at its next
 * period; meanwhile the page says so, instead of showing old progress as if it were current. The
 * notice goes away with the next answer. A poll after the session ended never gets here: the server
 * answers it with HX-Redirect to the login page (onboarding.middleware).
 * Loaded as a static file because the Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  var TEXT = "No pudimos actualizar el estado. Seguimos intentando; si el problema continúa, recargue la página.";

  function noticeFor(poller) {
    return poller && poller.id ? document.getElementById(poller.id + "-problem") : null;
  }

  function show(poller) {
    if (!poller || !poller.id || !poller.parentNode || noticeFor(poller)) return;
    var notice = document.createElement("p");
    notice.id = poller.id + "-problem";
    notice.className = "notice error poll-problem";
    notice.setAttribute("role", "alert");
    notice.textContent = TEXT;
    poller.parentNode.insertBefore(notice, poller);
  }

  function clear(poller) {
    var notice = noticeFor(poller);
    if (notice) notice.parentNode.removeChild(notice);
  }

  function isPoller(elt) {
    return elt instanceof Element && elt.hasAttribute("hx-get") && /every /.test(elt.getAttribute("hx-trigger") || "");
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (isPoller(event.detail.elt)) show(event.detail.elt);
  });
  document.addEventListener("htmx:sendError", function (event) {
    if (isPoller(event.detail.elt)) show(event.detail.elt);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful && event.detail.elt instanceof Element) clear(event.detail.elt);
  });
})();
