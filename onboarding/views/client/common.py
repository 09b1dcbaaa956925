"""What the client pages share: the access lookups (another client's or another firm's company,
certificate or job is a 404), the claim helpers and our own 404 page.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from onboarding.models import Certificate, ClaimStatus, ClientCompany, CompanyClaim
from onboarding.selectors import client as client_selectors


def client_company_or_404(
    *, user: AbstractBaseUser | AnonymousUser, company_id: object
) -> tuple[ClientCompany, CompanyClaim | None]:
    """The company if `user` owns or claims it, with `user`'s claim on it (None for an owner without
    one), else Http404 — the same rule as `access.client_job_or_404`: another client's or another
    firm's company is indistinguishable from one that does not exist. For an unproven claimant the
    company is their display copy (`client_selectors.client_company_get`)."""
    company = client_selectors.client_company_get(user=user, company_id=company_id)
    if company is None:
        raise Http404
    return company, client_selectors.client_claim_get(company=company, user=user)


def client_certificate_or_404(*, company: ClientCompany, claim: CompanyClaim | None, certificate_id: object) -> Certificate:
    """The company's certificate with that id as `client_selectors.client_certificate_get` sees it for
    `claim`, else Http404."""
    certificate = client_selectors.client_certificate_get(company=company, certificate_id=certificate_id, claim=claim)
    if certificate is None:
        raise Http404
    return certificate


def claim_lost(claim: CompanyClaim | None) -> bool:
    """Whether `claim` lost: another claimant of the company was proven its owner first."""
    return claim is not None and claim.status == ClaimStatus.LOST


def claim_pending(claim: CompanyClaim | None) -> CompanyClaim | None:
    """The claim new certificates and jobs belong to: a pending one; None once the user owns the company."""
    return claim if claim is not None and claim.status == ClaimStatus.PENDING else None


def not_found_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Render our own 404 page (with a way to log in for anonymous visitors) for client URLs."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return render(request, "client/not_found.html", {"next": request.get_full_path()}, status=404)

    return wrapper
