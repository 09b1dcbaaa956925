"""What every firm page shares: the `staff_view` access decorator, the page context, the live-refresh
cadence and the lookups of tenant objects used by more than one page family.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import reverse

from onboarding import access, selectors
from onboarding.models import ClientCompany, Membership

StaffView = Callable[..., HttpResponse]

# Live refresh cadence of queued/running rows and of an active job's page.
POLL_EVERY = "every 3s"


def staff_view(
    *, methods: tuple[str, ...] = ("GET",), access_check: Callable[..., Membership] = access.membership_or_404
) -> Callable[[StaffView], Callable[..., HttpResponse]]:
    """Wrap a firm view: login required, then `access_check` (404), then the method check (405).

    The wrapped view is called as `view(request, membership, **kwargs)` (no `tenant_slug`).
    """
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorator(view: StaffView) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        def wrapper(request: HttpRequest, tenant_slug: str, **kwargs: Any) -> HttpResponse:
            membership = access_check(user=request.user, tenant_slug=tenant_slug)
            if request.method not in allowed:
                return HttpResponseNotAllowed(sorted(allowed))
            return view(request, membership, **kwargs)

        return wrapper

    return decorator


def staff_context(membership: Membership, section: str, **extra: Any) -> dict[str, Any]:
    """What every firm page gets: the member, the tenant and which nav section is current."""
    return {"membership": membership, "tenant": membership.tenant, "section": section, **extra}


def dashboard_url(membership: Membership, query_string: str) -> str:
    """The dashboard URL with the filters the user had (only a query string is accepted back)."""
    url = reverse("staff:dashboard", kwargs={"tenant_slug": membership.tenant.slug})
    query_string = query_string.lstrip("?")
    if query_string and "/" not in query_string and ":" not in query_string:
        url += "?" + query_string
    return url


def company_or_404(membership: Membership, company_id: int) -> ClientCompany:
    """The tenant's client company with that id (`access.staff_company_or_404`), else Http404."""
    return access.staff_company_or_404(membership=membership, company_id=company_id)


def representative_or_404(membership: Membership, representative_id: int) -> Any:
    """The tenant's representative with that id, else Http404."""
    representative = selectors.representative_get(tenant=membership.tenant, representative_id=representative_id)
    if representative is None:
        raise Http404
    return representative
