"""Middleware of the portal's own: what a live page's poll gets once the session has ended."""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

# What a signed-out request for a signed-in page gets: the firm's pages redirect to the login page,
# the client's pages answer 404 (they never confirm that an object exists).
_SIGNED_OUT_ANSWERS = frozenset({301, 302, 303, 307, 308, 401, 403, 404})


class HtmxSessionEndedMiddleware:
    """Sends a live page to the login page when its poll finds the session ended.

    Without this, the browser's XHR follows the login redirect and htmx swaps the whole login page
    into the dashboard's table, or a client's job page keeps polling a 404 forever while showing
    stale progress. An htmx request from a signed-out user that gets a redirect to the login page or
    a 401/403/404 gets instead an ``HX-Redirect`` to the login page, with ``next`` set to the page
    that was polling (htmx then navigates the whole window). Other requests pass unchanged. Must come
    after ``AuthenticationMiddleware`` and django-htmx's ``HtmxMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or request.user.is_authenticated or response.status_code not in _SIGNED_OUT_ANSWERS:
            return response
        login_path = resolve_url(settings.LOGIN_URL)
        if response.status_code < 400 and urlsplit(response.get("Location", "")).path != login_path:
            return response  # some other redirect: not about the session
        # The page the poll came from (same origin only, as django-htmx parses it); LoginView checks
        # `next` again before following it.
        page = htmx.current_url_abs_path or "/"
        return HttpResponseClientRedirect(f"{login_path}?{urlencode({'next': page})}")
