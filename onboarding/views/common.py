"""Views every user reaches: the home redirect, login/logout and the health check."""
from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from onboarding import selectors


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
    companies = list(selectors.companies_owned_by(user=request.user))
    if not memberships and len(companies) == 1:
        try:
            return redirect(reverse("client:company", kwargs={"company_id": companies[0].pk}))
        except NoReverseMatch:
            pass
    return render(request, "common/home.html", {"memberships": memberships, "companies": companies})


class LoginView(auth_views.LoginView):
    template_name = "common/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database check for load balancers and compose healthchecks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
