"""Views every user reaches: the home redirect, login/logout and the health check."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from onboarding import selectors, throttle
from onboarding.forms.common import LoginForm


def home(request: HttpRequest) -> HttpResponse:
    """Send each user where they work: firm staff to their dashboard, clients to their companies."""
    if not request.user.is_authenticated:
        return render(request, "common/landing.html")
    memberships = list(selectors.memberships_of(user=request.user))
    if len(memberships) == 1:
        try:
            return redirect(reverse("staff:dashboard", kwargs={"tenant_slug": memberships[0].tenant.slug}))
        except NoReverseMatch:
            pass
    companies = selectors.client_companies(user=request.user)  # owned or claimed (CompanyClaim)
    if not memberships and len(companies) == 1:
        try:
            return redirect(reverse("client:company", kwargs={"company_id": companies[0].pk}))
        except NoReverseMatch:
            pass
    return render(request, "common/home.html", {"memberships": memberships, "companies": companies})


class LoginView(auth_views.LoginView):
    """Django's login, throttled: repeated failures lock the account and the address for a while."""

    template_name = "common/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = throttle.login_locked_seconds(request=request, username=username)
        if wait > 0:
            # An unbound form: validating the posted one would still check the password.
            form = self.get_form_class()(request=request, initial={"username": username})
            locked_message = (
                "Demasiados intentos fallidos. Por seguridad, espere "
                f"{throttle.minutes_text(wait)} antes de volver a intentarlo."
            )
            context = self.get_context_data(form=form, locked_message=locked_message)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        throttle.login_failure_record(request=self.request, username=self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        throttle.login_success_record(request=self.request, username=form.get_user().get_username())
        return super().form_valid(form)


@require_http_methods(["GET", "HEAD", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST logs out and sends to the login page. GET (a typed or bookmarked /salir/) asks first: a
    link must not end a session (a prefetch or an image tag could), but it should not be a blank 405."""
    if request.method == "POST":
        logout(request)
        return redirect("login")
    if not request.user.is_authenticated:
        return redirect("login")
    return render(request, "common/logout.html")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a Spanish page that says nothing was saved and links back to the form's page
    (the Referer, when it is one of ours), instead of Django's technical 403."""
    referer = request.META.get("HTTP_REFERER", "")
    safe = url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    back_url = referer if referer and safe else reverse("home")
    return render(request, "403_csrf.html", {"back_url": back_url}, status=403)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database check for load balancers and compose healthchecks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
