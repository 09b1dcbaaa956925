"""The firm's representatives: nobody replaces a representative by themself (form, confirmation and
service), and "Agregar representante" never silently renames a representative who is already active;
an inactive one is reactivated and the message says so."""
from __future__ import annotations

import html
import re

import pytest

from onboarding import services
from onboarding.models import AuditAction, AuditEntry, EnrollmentJob, Representative
from tests.onboarding.staff_factories import staff_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("enqueued")]

OLD_RUT, OLD_NAME = "13322924-8", "ALEX BRITO MARDONES"  # the cast's representative of tenant A
OTHER_RUT, OTHER_NAME = "14567890-0", "MARCELA ROJAS"
SAME_PERSON = "Ese RUT es el del representante actual. Para reemplazarlo, ingrese el RUT de otra persona."


def text(response) -> str:  # type: ignore[no-untyped-def]
    body = html.unescape(response.content.decode())
    body = re.sub(r'<span class="rut">([^<]*)</span>', r"\1", body)  # a RUT's no-wrap span is not a word break
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def old_representative(cast) -> Representative:  # type: ignore[no-untyped-def]
    return Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)


def other_representative(cast, *, active: bool = True) -> Representative:  # type: ignore[no-untyped-def]
    other = services.representative_add(tenant=cast.tenant_a, rut=OTHER_RUT, name=OTHER_NAME)
    if not active:
        Representative.objects.filter(pk=other.pk).update(is_active=False)
        other.refresh_from_db()
    return other


def settings_audit(cast) -> list[str]:  # type: ignore[no-untyped-def]
    return list(AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.SETTINGS).values_list("summary", flat=True))


# --- Replacing: never the same person --------------------------------------------------------


@pytest.mark.parametrize("typed_rut", ["13.322.924-8", "13322924-8", "13.322.924-8 "])
def test_replace_service_refuses_the_current_representatives_own_rut_before_writing(cast, typed_rut) -> None:  # type: ignore[no-untyped-def]
    old = old_representative(cast)
    with pytest.raises(services.ServiceError) as refused:
        services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=typed_rut, new_name="Alex",
                                        actor=cast.owner_a)
    assert refused.value.code == "same_representative" and refused.value.message == SAME_PERSON
    old.refresh_from_db()
    assert (old.name, old.is_active) == (OLD_NAME, True)
    assert settings_audit(cast) == [] and not EnrollmentJob.objects.filter(kind="replace").exists()


def test_replace_service_refuses_an_inactive_representative_replaced_by_themself(cast) -> None:  # type: ignore[no-untyped-def]
    other_representative(cast)
    old = old_representative(cast)
    Representative.objects.filter(pk=old.pk).update(is_active=False)
    old.refresh_from_db()
    with pytest.raises(services.ServiceError) as typed:
        services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=OLD_RUT, new_name="Alex", actor=cast.owner_a)
    assert typed.value.code == "same_representative"
    with pytest.raises(services.ServiceError) as chosen:
        services.representative_replace(tenant=cast.tenant_a, old=old, new=old, actor=cast.owner_a)
    assert chosen.value.code == "same_representative"
    old.refresh_from_db()
    assert (old.name, old.is_active) == (OLD_NAME, False)
    assert settings_audit(cast) == []


def test_replace_service_refuses_typing_another_active_representatives_rut_without_renaming(cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast)
    old = old_representative(cast)
    with pytest.raises(services.ServiceError) as refused:
        services.representative_replace(tenant=cast.tenant_a, old=old, new_rut="14.567.890-0", new_name="Otra Persona",
                                        actor=cast.owner_a)
    assert refused.value.code == "already_representative" and OTHER_NAME in refused.value.message
    other.refresh_from_db()
    old.refresh_from_db()
    assert (other.name, other.is_active, old.is_active) == (OTHER_NAME, True, True)
    # Chosen as a representative (not typed), the same person is fine.
    services.representative_replace(tenant=cast.tenant_a, old=old, new=other, actor=cast.owner_a)
    old.refresh_from_db()
    assert not old.is_active


def test_replace_service_reactivates_an_inactive_representative_typed_as_the_new_one(cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast, active=False)
    old = old_representative(cast)
    services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=OTHER_RUT, new_name=OTHER_NAME,
                                    actor=cast.owner_a)
    other.refresh_from_db()
    old.refresh_from_db()
    assert (other.is_active, old.is_active) == (True, False)


@pytest.mark.parametrize("typed_rut", ["13.322.924-8", "13322924-8", "133229248"])
def test_replace_page_refuses_the_same_person_with_a_field_error_and_no_confirmation(client, cast, typed_rut) -> None:  # type: ignore[no-untyped-def]
    old = old_representative(cast)
    client.force_login(cast.owner_a)
    url = staff_url("representative_replace", representative_id=old.pk)
    response = client.post(url, {"nuevo": "otro", "nuevo_rut": typed_rut, "nuevo_nombre": "Alex"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Confirme el cambio" not in page and "Confirmar el reemplazo" not in page
    assert SAME_PERSON in text(response)
    assert 'aria-invalid="true"' in page and "nuevo-rut-error" in page  # tied to the RUT field
    # A forged confirmation changes nothing either.
    response = client.post(url, {"nuevo": "otro", "nuevo_rut": typed_rut, "nuevo_nombre": "ALEX", "confirmar": "1"})
    assert response.status_code == 200 and SAME_PERSON in text(response)
    old.refresh_from_db()
    assert (old.name, old.is_active) == (OLD_NAME, True)
    assert not EnrollmentJob.objects.filter(kind="replace").exists() and settings_audit(cast) == []


def test_replace_page_never_offers_or_accepts_the_old_representative_from_the_list(client, cast) -> None:  # type: ignore[no-untyped-def]
    other_representative(cast)
    old = old_representative(cast)
    client.force_login(cast.owner_a)
    url = staff_url("representative_replace", representative_id=old.pk)
    assert f'value="{old.pk}"' not in client.get(url).content.decode()
    for data in ({"nuevo": str(old.pk)}, {"nuevo": str(old.pk), "confirmar": "1"}):
        response = client.post(url, data)
        assert "Elija un representante vigente" in text(response) and "Confirme el cambio" not in text(response)
    old.refresh_from_db()
    assert old.is_active and settings_audit(cast) == []


def test_replace_page_points_to_the_list_when_the_typed_rut_is_already_a_representative(client, cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast)
    old = old_representative(cast)
    client.force_login(cast.owner_a)
    url = staff_url("representative_replace", representative_id=old.pk)
    response = client.post(url, {"nuevo": "otro", "nuevo_rut": "14.567.890-0", "nuevo_nombre": "Otra Persona"})
    assert "Confirme el cambio" not in text(response)
    assert f"Ese RUT ya es representante del estudio ({OTHER_NAME})" in text(response)
    other.refresh_from_db()
    assert other.name == OTHER_NAME
    # Choosing them in the list goes on to the confirmation.
    response = client.post(url, {"nuevo": str(other.pk)})
    assert "Confirme el cambio" in text(response) and f"{OTHER_NAME} (RUT 14.567.890-0)" in text(response)


# --- Adding: an active representative is not renamed; an inactive one is reactivated ----------


def test_add_service_refuses_the_rut_of_an_active_representative(cast) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(services.ServiceError) as refused:
        services.representative_create(tenant=cast.tenant_a, rut="13.322.924-8", name="Dup", actor=cast.owner_a)
    assert refused.value.code == "already_representative"
    assert refused.value.message == f"Ese RUT ya es representante del estudio ({OLD_NAME})."
    old = old_representative(cast)
    assert (old.name, old.is_active) == (OLD_NAME, True) and settings_audit(cast) == []


def test_add_page_refuses_the_rut_of_an_active_representative_with_a_field_error(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    response = client.post(staff_url("representative_add"), {"rut": "13.322.924-8", "name": "Dup"}, follow=True)
    page = response.content.decode()
    assert f"Ese RUT ya es representante del estudio ({OLD_NAME})." in text(response)
    assert "DUP agregado" not in text(response) and "id_rut_error" in page
    assert old_representative(cast).name == OLD_NAME and settings_audit(cast) == []


def test_add_page_reactivates_an_inactive_representative_and_says_so(client, cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast, active=False)
    client.force_login(cast.owner_a)
    response = client.post(staff_url("representative_add"), {"rut": "14.567.890-0", "name": OTHER_NAME}, follow=True)
    assert f"Representante {OTHER_NAME} reactivado." in text(response) and "agregado" not in text(response)
    other.refresh_from_db()
    assert other.is_active and other.name == OTHER_NAME
    assert any(summary.endswith("reactivado") for summary in settings_audit(cast))


def test_add_page_reactivating_under_another_name_says_which_name_it_had(client, cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast, active=False)
    client.force_login(cast.owner_a)
    response = client.post(staff_url("representative_add"), {"rut": "14567890-0", "name": "Marcela Rojas Díaz"}, follow=True)
    assert f"Representante MARCELA ROJAS DÍAZ reactivado (antes figuraba como {OTHER_NAME})." in text(response)
    other.refresh_from_db()
    assert other.is_active and other.name == "MARCELA ROJAS DÍAZ"
    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.SETTINGS)
    assert entry.details["before"] == {"name": OTHER_NAME, "is_active": False}
    assert OTHER_NAME in entry.summary and "reactivado" in entry.summary


def test_replace_page_says_when_the_typed_person_is_an_inactive_representative_coming_back(client, cast) -> None:  # type: ignore[no-untyped-def]
    other = other_representative(cast, active=False)
    old = old_representative(cast)
    client.force_login(cast.owner_a)
    url = staff_url("representative_replace", representative_id=old.pk)
    response = client.post(url, {"nuevo": "otro", "nuevo_rut": "14.567.890-0", "nuevo_nombre": "Marcela Rojas Díaz"})
    assert "Confirme el cambio" in text(response)
    assert (f"{OTHER_NAME} (RUT 14.567.890-0) figura como representante inactivo del estudio: volverá a estar "
            "vigente y su nombre quedará como MARCELA ROJAS DÍAZ.") in text(response)
    other.refresh_from_db()
    assert (other.name, other.is_active) == (OTHER_NAME, False)  # nothing written before the confirmation
