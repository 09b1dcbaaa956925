"""The rules reads and writes share (`onboarding.domain.rules`) give one answer on both sides."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from onboarding import selectors, services
from onboarding.domain import display, rules
from onboarding.models import Certificate, JobKind, Relationship


def test_an_expired_stored_certificate_is_offered_to_nobody(cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    assert selectors.client_certificate_current(company=cast.company_a) == certificate
    assert services.company_usable_certificate(company=cast.company_a) == certificate

    Certificate.objects.filter(pk=certificate.pk).update(not_after=timezone.now() - timedelta(minutes=1))
    certificate.refresh_from_db()

    assert certificate.is_usable  # the key material is still stored...
    assert not rules.certificate_is_usable(certificate, now=timezone.now())  # ...but no job may use it
    assert selectors.client_certificate_current(company=cast.company_a) is None
    assert services.company_usable_certificate(company=cast.company_a) is None


def test_the_predicate_and_the_filter_are_the_same_rule(cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    stored = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    expired = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    Certificate.objects.filter(pk=expired.pk).update(not_after=now - timedelta(seconds=1))
    erased = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    services.certificate_destroy(certificate=erased, reason="client_deleted")

    everything = Certificate.objects.filter(company=cast.company_a)
    by_predicate = {c.pk for c in everything if rules.certificate_is_usable(c, now=now)}
    assert by_predicate == set(rules.certificates_usable(everything, now=now).values_list("pk", flat=True))
    assert by_predicate == {stored.pk}


def test_an_ending_relationship_needs_the_removal_of_whoever_the_sii_holds(cast) -> None:  # type: ignore[no-untyped-def]
    company = cast.company_a
    company.relationship, company.sii_user_rut = Relationship.ENDING, "13322924-8"
    change = rules.pending_change(company)
    assert change == rules.PendingChange(kind=JobKind.REVOKE, representative=rules.representative_active(cast.tenant_a))
    assert rules.sii_user_name(company) == "ALEX BRITO MARDONES"


def test_another_holder_in_the_sii_needs_a_replacement(cast) -> None:  # type: ignore[no-untyped-def]
    company = cast.company_a
    company.sii_user_rut = "12531909-2"  # nobody of this firm: its name comes from nowhere but the RUT
    change = rules.pending_change(company)
    assert change.kind == JobKind.REPLACE
    assert change.representative == rules.representative_active(cast.tenant_a)
    assert (change.old_user_rut, change.old_user_name) == ("12531909-2", "12531909-2")


def test_step_labels_are_the_clients_words_for_every_kind_of_job() -> None:
    assert display.step_label("login") == "Identificarse con el certificado digital"
    assert display.step_label("delete") == "Eliminar al usuario"
    assert display.step_label("queued") == "En cola"
    assert display.step_label("some_new_step") == "Some new step"
    for kind in JobKind.values:
        assert all(label == display.STEP_LABELS[code] for code, label in selectors.job_step_flow(kind=kind))


def test_invitation_tokens_name_their_invitation_and_nothing_forged() -> None:
    token = rules.invitation_token(invitation_id=42)
    assert rules.invitation_id_from_token(token) == "42"
    assert rules.invitation_id_from_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
