"""Owner-only pages: the firm's settings (with before/after in the audit log), representatives, the
team and its roles (never without an owner), the password link for new members, and the audit log."""
from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from onboarding import services
from onboarding.models import AuditAction, AuditEntry, Membership, Representative, Role, Tenant

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    return reverse(f"staff:{name}", kwargs={"tenant_slug": "pyme", **kwargs})


def text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())).split())


SETTINGS = {
    "name": "PyME Contadores Ltda.",
    "sii_environment": "certification",
    "grant_admin": "",
    "grant_sign": "on",
    "grant_registry": "on",
    "notification_emails": "avisos@pyme.cl, Jefa@Pyme.cl\navisos@pyme.cl",
}


def test_owner_changes_settings_and_the_audit_keeps_before_and_after(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    response = client.post(url("settings"), {k: v for k, v in SETTINGS.items() if v}, follow=True)
    assert "Configuración guardada." in text(response)
    tenant = Tenant.objects.get(pk=cast.tenant_a.pk)
    assert (tenant.name, tenant.sii_environment, tenant.grant_admin, tenant.grant_sign, tenant.grant_registry) == (
        "PyME Contadores Ltda.", "certification", False, True, True,
    )
    assert tenant.notification_email_list == ["avisos@pyme.cl", "jefa@pyme.cl"]
    entry = AuditEntry.objects.get(tenant=tenant, action=AuditAction.SETTINGS)
    assert entry.actor == cast.owner_a
    changes = entry.details["changes"]
    assert changes["name"] == {"before": "PyME Contadores", "after": "PyME Contadores Ltda."}
    assert changes["grant_admin"] == {"before": True, "after": False}
    assert changes["sii_environment"] == {"before": "sandbox", "after": "certification"}
    # Saving the same again changes nothing and logs nothing.
    client.post(url("settings"), {k: v for k, v in SETTINGS.items() if v})
    assert AuditEntry.objects.filter(tenant=tenant, action=AuditAction.SETTINGS).count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grant_admin": "", "grant_sign": "", "grant_registry": ""}, "Solicite al menos un permiso"),
        ({"notification_emails": "bien@pyme.cl\nmal@@pyme"}, "«mal@@pyme» no es válido"),
        ({"name": "  "}, "obligatorio"),
        ({"sii_environment": "marte"}, "Escoja una opción válida"),
    ],
)
def test_invalid_settings_are_refused_with_a_message(client, cast, change, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    data = {k: v for k, v in {**SETTINGS, **change}.items() if v}
    response = client.post(url("settings"), data)
    assert response.status_code == 200 and message in text(response)
    assert Tenant.objects.get(pk=cast.tenant_a.pk).name == "PyME Contadores"
    assert not AuditEntry.objects.filter(action=AuditAction.SETTINGS).exists()


def test_representatives_add_validate_deactivate_and_keep_one_active(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    original = Representative.objects.get(tenant=cast.tenant_a)
    # The last active one cannot go.
    response = client.post(url("representative_deactivate", representative_id=original.pk), follow=True)
    assert "al menos un representante vigente" in text(response)
    assert Representative.objects.get(pk=original.pk).is_active
    # Bad RUTs and company RUTs are refused.
    assert "dígito verificador" in text(client.post(url("representative_add"), {"rut": "12.531.909-3", "name": "X"}))
    assert "persona natural" in text(client.post(url("representative_add"), {"rut": "76.086.428-5", "name": "Empresa"}))
    # A good one is added (normalized), then the original can be deactivated and reactivated.
    response = client.post(url("representative_add"), {"rut": "12.531.909-2", "name": "Bea Rivas"}, follow=True)
    assert "Representante BEA RIVAS agregado" in text(response)
    added = Representative.objects.get(tenant=cast.tenant_a, rut="12531909-2")
    assert added.is_active and added.name == "BEA RIVAS"
    client.post(url("representative_deactivate", representative_id=original.pk))
    assert not Representative.objects.get(pk=original.pk).is_active
    assert "Inactivo" in text(client.get(url("settings")))
    client.post(url("representative_reactivate", representative_id=original.pk))
    assert Representative.objects.get(pk=original.pk).is_active
    summaries = list(AuditEntry.objects.filter(action=AuditAction.SETTINGS).values_list("summary", flat=True))
    assert any("agregado" in s for s in summaries) and any("desactivado" in s for s in summaries)
    assert any("reactivado" in s for s in summaries)
    # Deactivation is used by new jobs: the next job takes the first active representative.
    client.post(url("representative_deactivate", representative_id=original.pk))
    assert cast.tenant_a.representatives.filter(is_active=True).get() == added


def test_add_a_new_person_who_sets_a_password_through_the_emailed_link(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_BASE_URL = "https://autoriza.example.cl"
    client.force_login(cast.owner_a)
    response = client.post(url("team"), {"email": "Nueva@PyME.cl", "role": "admin"}, follow=True)
    assert "nueva@pyme.cl agregado como Administrador" in text(response)
    user = get_user_model().objects.get(username="nueva@pyme.cl")
    assert not user.has_usable_password()
    assert Membership.objects.get(tenant=cast.tenant_a, user=user).role == Role.ADMIN
    entry = AuditEntry.objects.get(action=AuditAction.SETTINGS, summary__contains="nueva@pyme.cl")
    assert entry.details["after"] == {"role": "admin"} and entry.details["before"] is None

    message = mail.outbox[-1]
    assert message.to == ["nueva@pyme.cl"] and "PyME Contadores" in message.subject
    link = re.search(r"https://autoriza\.example\.cl(\S+)", message.body).group(1)
    client.logout()
    response = client.get(link, follow=True)
    assert "Defina su contraseña" in text(response) and response.status_code == 200
    form_url = response.redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "Pino-Oregon-2024!", "new_password2": "Pino-Oregon-2024!"}, follow=True)
    assert "Contraseña definida" in text(response)
    assert client.login(username="nueva@pyme.cl", password="Pino-Oregon-2024!")
    assert client.get(url("dashboard")).status_code == 200
    # The link works once.
    client.logout()
    assert "ya no sirve" in text(client.get(link, follow=True))


def test_add_an_existing_user_and_refuse_duplicates_and_bad_emails(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    client.post(url("team"), {"email": "staff@b.cl", "role": "staff"})  # tenant B's staff joins A too
    assert Membership.objects.filter(tenant=cast.tenant_a, user=cast.staff_b, role="staff").exists()
    assert "Ingrese con su cuenta de siempre" in mail.outbox[-1].body
    assert cast.staff_b.has_usable_password()
    assert "ya es parte del equipo" in text(client.post(url("team"), {"email": "STAFF@b.cl", "role": "admin"}))
    assert "válid" in text(client.post(url("team"), {"email": "no-es-correo", "role": "staff"}))
    assert "válid" in text(client.post(url("team"), {"email": "x@y.cl", "role": "superusuario"}))


def test_roles_change_and_the_last_owner_stays(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    owner = Membership.objects.get(tenant=cast.tenant_a, user=cast.owner_a)
    staff = Membership.objects.get(tenant=cast.tenant_a, user=cast.staff_a)
    # Demoting or removing the only owner is refused.
    response = client.post(url("member_role", membership_id=owner.pk), {f"m{owner.pk}-role": "admin"}, follow=True)
    assert "al menos un dueño" in text(response)
    response = client.post(url("member_remove", membership_id=owner.pk), follow=True)
    assert "al menos un dueño" in text(response)
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER
    # Promote staff to owner, then the first owner may step down (and loses the owner pages).
    client.post(url("member_role", membership_id=staff.pk), {f"m{staff.pk}-role": "owner"})
    assert Membership.objects.get(pk=staff.pk).role == Role.OWNER
    response = client.post(url("member_role", membership_id=owner.pk), {f"m{owner.pk}-role": "staff"})
    assert response["Location"] == url("dashboard")
    assert client.get(url("team")).status_code == 404
    entries = AuditEntry.objects.filter(action=AuditAction.SETTINGS, summary__startswith="Rol de")
    assert {(e.details["before"]["role"], e.details["after"]["role"]) for e in entries} == {("staff", "owner"), ("owner", "staff")}


def test_remove_a_member(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    admin = Membership.objects.get(tenant=cast.tenant_a, user=cast.admin_a)
    response = client.post(url("member_remove", membership_id=admin.pk), follow=True)
    assert "admin@a.cl ya no es parte del equipo" in text(response)
    assert not Membership.objects.filter(pk=admin.pk).exists()
    assert get_user_model().objects.filter(pk=cast.admin_a.pk).exists()  # the user stays
    entry = AuditEntry.objects.get(action=AuditAction.SETTINGS, summary__contains="quitado")
    assert entry.details == {"membership": admin.pk, "before": {"role": "admin"}, "after": None}
    client.force_login(cast.admin_a)
    assert client.get(url("dashboard")).status_code == 404


def test_audit_log_lists_filters_and_paginates(client, cast) -> None:  # type: ignore[no-untyped-def]
    for i in range(60):
        services.audit_record(tenant=cast.tenant_a, actor=cast.admin_a, action=AuditAction.RERUN, summary=f"Re-ejecución {i}")
    services.audit_record(tenant=cast.tenant_a, actor=cast.owner_a, action=AuditAction.SETTINGS, summary="Cambio X", details={"a": 1})
    services.audit_record(tenant=cast.tenant_b, actor=cast.staff_b, action=AuditAction.SETTINGS, summary="De otro estudio")
    client.force_login(cast.owner_a)
    first = client.get(url("audit"))
    body = text(first)
    assert "Cambio X" in body and "dueno@a.cl" in body and "De otro estudio" not in body
    assert "Página 1 de 2" in body
    only = text(client.get(url("audit"), {"accion": "settings"}))
    assert "Cambio X" in only and "Re-ejecución 1" not in only
    second = text(client.get(url("audit"), {"accion": "rerun", "pagina": "2"}))
    assert "Re-ejecución 0" in second and "Página 2 de 2" in second
    # The page only reads: its one POST form is the logout button of the header.
    assert first.content.decode().count('method="post"') == 1


def test_audit_details_read_as_spanish_labels_not_python_dicts(client, cast) -> None:  # type: ignore[no-untyped-def]
    services.audit_record(
        tenant=cast.tenant_a, actor=cast.owner_a, action=AuditAction.SETTINGS, summary="Representante desactivado",
        details={"is_active": False, "rut": "13322924-8", "invitation": None, "before": {"role": "staff"}},
    )
    client.force_login(cast.owner_a)
    page = client.get(url("audit")).content.decode()
    assert "<dt>Activo</dt><dd>No</dd>" in page and "<dt>RUT</dt><dd>13.322.924-8</dd>" in page
    assert "<dt>Invitación</dt><dd>—</dd>" in page and "<dt>Antes</dt><dd>Rol: staff</dd>" in page
    assert "{&#x27;" not in page and "False" not in page


def test_owner_pages_in_navigation_only_for_owners(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    nav = client.get(url("dashboard")).content.decode()
    assert url("audit") in nav and url("settings") in nav and url("team") in nav
    client.force_login(cast.admin_a)
    nav = client.get(url("dashboard")).content.decode()
    assert url("audit") not in nav and url("settings") not in nav and url("team") not in nav


def test_password_link_is_for_one_user_only(client, cast) -> None:  # type: ignore[no-untyped-def]
    link = urlsplit(services.member_password_link(user=cast.staff_a)).path
    forged = link.replace(link.split("/")[-3], "OTk5OTk")
    assert "ya no sirve" in text(client.get(forged, follow=True))
