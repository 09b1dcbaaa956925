"""Tenant isolation at the selector and access-helper level: another tenant's rows are unreachable."""
from __future__ import annotations

import pytest
from django.http import Http404

from onboarding import access, selectors
from onboarding.models import EnrollmentJob


@pytest.fixture
def job_a(cast):  # type: ignore[no-untyped-def]
    return EnrollmentJob.objects.create(
        tenant=cast.tenant_a, company=cast.company_a, representative=cast.tenant_a.representatives.get(),
        user_rut="13322924-8", user_name="ALEX BRITO MARDONES",
    )


def test_selectors_only_return_the_tenants_own_rows(cast, job_a) -> None:  # type: ignore[no-untyped-def]
    assert list(selectors.company_list(tenant=cast.tenant_b)) == [cast.company_b]
    assert selectors.company_get(tenant=cast.tenant_b, company_id=cast.company_a.pk) is None
    assert selectors.job_get(tenant=cast.tenant_b, job_id=job_a.pk) is None
    assert list(selectors.job_list(tenant=cast.tenant_b)) == []
    assert selectors.job_get(tenant=cast.tenant_a, job_id=job_a.pk) == job_a
    assert selectors.job_get(tenant=cast.tenant_a, job_id="not-a-uuid") is None


def test_access_helpers_answer_404_across_tenants(cast, job_a) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Http404):
        access.membership_or_404(user=cast.staff_b, tenant_slug=cast.tenant_a.slug)
    membership_b = access.membership_or_404(user=cast.staff_b, tenant_slug=cast.tenant_b.slug)
    with pytest.raises(Http404):
        access.staff_company_or_404(membership=membership_b, company_id=cast.company_a.pk)
    with pytest.raises(Http404):
        access.staff_job_or_404(membership=membership_b, job_id=job_a.pk)
    with pytest.raises(Http404):
        access.client_job_or_404(user=cast.staff_b, job_id=job_a.pk)
    assert access.client_job_or_404(user=cast.client_a, job_id=job_a.pk) == job_a


def test_roles_gate_reruns_and_owner_pages(cast) -> None:  # type: ignore[no-untyped-def]
    slug = cast.tenant_a.slug
    assert access.rerun_membership_or_404(user=cast.admin_a, tenant_slug=slug)
    assert access.rerun_membership_or_404(user=cast.owner_a, tenant_slug=slug)
    with pytest.raises(Http404):
        access.rerun_membership_or_404(user=cast.staff_a, tenant_slug=slug)
    with pytest.raises(Http404):
        access.owner_membership_or_404(user=cast.admin_a, tenant_slug=slug)
    with pytest.raises(Http404):
        access.membership_or_404(user=cast.client_a, tenant_slug=slug)


def test_per_tenant_uniqueness_allows_the_same_rut_in_two_firms(cast) -> None:  # type: ignore[no-untyped-def]
    from onboarding import services

    same = services.client_company_create(tenant=cast.tenant_b, rut="76086428-5", legal_name="Comercial Demo SpA")
    assert same.rut == cast.company_a.rut and same.tenant != cast.company_a.tenant
    with pytest.raises(services.ServiceError):
        services.client_company_create(tenant=cast.tenant_a, rut="76.086.428-5", legal_name="Duplicada")
