"""The firm's public signup page (also where an invitation is completed)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from onboarding import services
from onboarding.domain.display import rut_display, sentence_end
from onboarding.forms.client import SignupForm
from onboarding.selectors import client as client_selectors
from onboarding.services.errors import ServiceError

# Told to a client who registers a company someone else already registered with the firm (CompanyClaim).
COMPETING_NOTE = (
    "Otra persona ya había registrado esta empresa con {tenant}. Quedará como dueña de la empresa en "
    "Autoriza la primera persona que complete la autorización en el SII con el certificado digital de "
    "un representante legal o administrador de la empresa."
)


@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_post_parameters("password")
def signup(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The firm's public signup page; with `?invitacion=<token>` it completes an invitation."""
    tenant = client_selectors.tenant_get_by_slug(slug=tenant_slug)
    if tenant is None:
        raise Http404
    token = request.GET.get("invitacion", "").strip()
    invitation = services.invitation_from_token(token=token, tenant=tenant) if token else None
    if invitation is None and token:
        # Back after signing up by invitation: the link is spent, but it was this user who spent it.
        used = client_selectors.invitation_company_used_by(token=token, tenant=tenant, user=request.user)
        if used is not None:
            return redirect("client:company", company_id=used.pk)
    with_account = not request.user.is_authenticated
    if request.method == "POST":
        form = SignupForm(request.POST, with_account=with_account)
        if form.is_valid():
            data = form.cleaned_data
            try:
                signup = services.client_signup(
                    tenant=tenant,
                    rut=data["company_rut"],
                    legal_name=data["legal_name"],
                    owner_name=data["owner_name"],
                    email=data.get("email", ""),
                    password=data.get("password", ""),
                    user=request.user if not with_account else None,
                    invitation=invitation,
                )
            except ServiceError as error:
                field = {
                    "email_taken": "email" if with_account else None,
                    "company_exists": "company_rut",
                    "invitation_rut_mismatch": "company_rut",
                }.get(error.code)
                form.add_error(field, error.message)
            else:
                if with_account:
                    login(request, signup.user)
                messages.success(request, f"Listo: registramos {sentence_end(data['legal_name'])} Ahora suba su certificado digital.")
                if signup.competing:
                    messages.info(request, COMPETING_NOTE.format(tenant=tenant.name))
                return redirect("client:certificate_upload", company_id=signup.company.pk)
    else:
        initial: dict[str, str] = {}
        if invitation is not None:
            initial = {
                "company_rut": invitation.company.rut,
                "legal_name": invitation.company.legal_name,
                "owner_name": invitation.name or invitation.company.owner_name,
                "email": invitation.email,
            }
        form = SignupForm(initial=initial, with_account=with_account)
    representative = client_selectors.representative_active(tenant=tenant)
    return render(
        request,
        "client/signup.html",
        {
            "tenant": tenant,
            "form": form,
            "invitation": invitation,
            "invitation_invalid": bool(token) and invitation is None,
            "representative": representative,
            "representative_rut": rut_display(representative.rut) if representative else "",
            "with_account": with_account,
        },
    )
