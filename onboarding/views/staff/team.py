"""The firm's team (owners): people and roles, and the page where a person added sets a password."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from onboarding import access, selectors, services
from onboarding.domain.display import sentence_end
from onboarding.forms.staff import MemberAddForm, MemberPasswordForm, MemberRoleForm
from onboarding.models import Membership, Role
from onboarding.views.staff.common import staff_context, staff_view


def _team_page(request: HttpRequest, membership: Membership, form: MemberAddForm | None = None) -> HttpResponse:
    members = list(selectors.member_list(tenant=membership.tenant))
    context = staff_context(
        membership,
        "team",
        members=[{"member": m, "role_form": MemberRoleForm(initial={"role": m.role}, prefix=f"m{m.pk}")} for m in members],
        form=form or MemberAddForm(),
        owner_count=sum(m.role == Role.OWNER for m in members),
        roles=Role.choices,
    )
    return render(request, "staff/team.html", context)


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def team(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The firm's people and roles; add a person by email (they get a link to set a password)."""
    if request.method != "POST":
        return _team_page(request, membership)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            added = services.member_add(
                tenant=membership.tenant, email=form.cleaned_data["email"], role=form.cleaned_data["role"], actor=request.user
            )
        except services.ServiceError as error:
            form.add_error("email", error.message)
        else:
            messages.success(
                request, f"{added.user.get_username()} agregado como {added.get_role_display()}. Le enviamos un correo."
            )
            return redirect("staff:team", tenant_slug=membership.tenant.slug)
    return _team_page(request, membership, form)


def _member_or_404(membership: Membership, membership_id: int) -> Membership:
    member = selectors.member_get(tenant=membership.tenant, membership_id=membership_id)
    if member is None:
        raise Http404
    return member


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def member_role(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    """Change a member's role (never leaving the firm without an owner)."""
    member = _member_or_404(membership, membership_id)
    form = MemberRoleForm(request.POST, prefix=f"m{member.pk}")
    if not form.is_valid():
        messages.error(request, "Elija un rol válido.")
    else:
        try:
            services.member_role_change(membership=member, role=form.cleaned_data["role"], actor=request.user)
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{member.user.get_username()} ahora es {member.get_role_display()}.")
    if member.user_id == request.user.pk and member.role != Role.OWNER:
        # The owner gave up their own ownership: the team page is no longer theirs.
        return redirect("staff:dashboard", tenant_slug=membership.tenant.slug)
    return redirect("staff:team", tenant_slug=membership.tenant.slug)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def member_remove(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    """Take a person out of the firm (never the last owner)."""
    member = _member_or_404(membership, membership_id)
    try:
        services.member_remove(membership=member, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
        return redirect("staff:team", tenant_slug=membership.tenant.slug)
    if member.user_id == request.user.pk:
        messages.success(request, f"Usted salió del equipo de {sentence_end(membership.tenant.name)}")
        return redirect("home")
    messages.success(request, f"{member.user.get_username()} ya no es parte del equipo.")
    return redirect("staff:team", tenant_slug=membership.tenant.slug)


# --- Password for people added to a team ------------------------------------------------------------


class PasswordSetView(auth_views.PasswordResetConfirmView):
    """Where a person added to a firm sets their first password (Django's reset-token machinery)."""

    template_name = "staff/password_set.html"
    form_class = MemberPasswordForm
    success_url = reverse_lazy("login")
    post_reset_login = False

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Contraseña definida. Ya puede ingresar con su correo.")
        return response


password_set = PasswordSetView.as_view()
