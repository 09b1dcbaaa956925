"""The firm's own keys: each representative's certificate, which lets the firm verify and maintain its
access to its clients in the SII without asking them again.

Every member sees the page (holder, expiry, last use, whether the SII rejected a key); only owners
and admins upload, replace or delete a key. Another tenant's representative is a 404.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from onboarding import access, selectors, services
from onboarding.forms.client import InMemoryCertificateUploadHandler
from onboarding.forms.staff import FirmKeyUploadForm
from onboarding.models import Membership, Representative
from onboarding.views.staff.common import representative_or_404, staff_context, staff_view
from sii_bot.certificates import CertificateError

# Which field a certificate refusal is shown next to (the file otherwise).
_ERROR_FIELD = {"wrong_password": "password"}


def _form_prefix(representative: Representative) -> str:
    return f"k{representative.pk}"


def _keys_page(
    request: HttpRequest, membership: Membership, failed: tuple[Representative, FirmKeyUploadForm] | None = None
) -> HttpResponse:
    rows = selectors.firm_key_rows(tenant=membership.tenant, now=timezone.now())
    items = []
    for row in rows:
        if failed is not None and failed[0].pk == row.representative.pk:
            form = failed[1]
        else:
            form = FirmKeyUploadForm(prefix=_form_prefix(row.representative))
        items.append({"row": row, "form": form})
    context = staff_context(
        membership,
        "firm_keys",
        items=items,
        can_manage=membership.can_rerun,
        warn_days=selectors.FIRM_KEY_EXPIRY_WARN_DAYS,
        max_kb=settings.AUTORIZA_MAX_CERTIFICATE_BYTES // 1024,
    )
    return render(request, "staff/firm_keys.html", context, status=400 if failed is not None else 200)


@staff_view()
def firm_keys(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Each representative with their firm key: holder, expiry (warned under 30 days), last use."""
    return _keys_page(request, membership)


@csrf_exempt
@sensitive_post_parameters()
def firm_key_upload(request: HttpRequest, tenant_slug: str, representative_id: int) -> HttpResponse:
    """Upload (or replace) a representative's firm key: the .pfx and its password, opened once.

    The upload handlers are swapped before anything reads the body (hence csrf_exempt here and
    csrf_protect on the real view, as Django documents) so the file stays in memory.
    """
    request.upload_handlers = [
        InMemoryCertificateUploadHandler(request, max_bytes=settings.AUTORIZA_MAX_CERTIFICATE_BYTES)
    ]
    return _firm_key_upload(request, tenant_slug=tenant_slug, representative_id=representative_id)


@csrf_protect
@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
@sensitive_variables("password")
def _firm_key_upload(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    representative = representative_or_404(membership, representative_id)
    form = FirmKeyUploadForm(request.POST, request.FILES, prefix=_form_prefix(representative))
    if not form.is_valid():
        return _keys_page(request, membership, failed=(representative, form))
    password = form.cleaned_data["password"]
    try:
        firm_key = services.firm_key_upload(
            representative=representative,
            upload=form.cleaned_data["certificate"],
            password=password,
            uploaded_by=request.user,
        )
    except CertificateError as error:
        form.add_error(_ERROR_FIELD.get(error.code, "certificate"), error.message)
        return _keys_page(request, membership, failed=(representative, form))
    except services.ServiceError as error:
        if not representative.is_active:
            # The page shows no upload form for an inactive representative: say it at the top.
            messages.error(request, error.message)
            return redirect("staff:firm_keys", tenant_slug=membership.tenant.slug)
        form.add_error("certificate", error.message)
        return _keys_page(request, membership, failed=(representative, form))
    finally:
        del password
    messages.success(
        request,
        f"Llave del estudio de {representative.name} guardada: certificado de {firm_key.holder_name}, "
        f"vigente hasta el {timezone.localtime(firm_key.not_after):%d-%m-%Y}.",
    )
    return redirect("staff:firm_keys", tenant_slug=membership.tenant.slug)


@staff_view(methods=("GET", "POST"), access_check=access.rerun_membership_or_404)
def firm_key_delete(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Delete a representative's firm key: a confirmation page (GET), then the erasure (POST)."""
    representative = representative_or_404(membership, representative_id)
    firm_key = selectors.firm_key_get(tenant=membership.tenant, representative=representative)
    if firm_key is None:
        messages.info(request, f"{representative.name} no tiene una llave del estudio guardada.")
        return redirect("staff:firm_keys", tenant_slug=membership.tenant.slug)
    if request.method != "POST":
        context = staff_context(membership, "firm_keys", representative=representative, firm_key=firm_key)
        return render(request, "staff/firm_key_delete.html", context)
    services.firm_key_delete(firm_key=firm_key, actor=request.user)
    messages.success(
        request,
        f"Llave del estudio de {representative.name} eliminada. Los cambios en el SII de sus clientes "
        "volverán a pedir el certificado de cada cliente.",
    )
    return redirect("staff:firm_keys", tenant_slug=membership.tenant.slug)
