"""Keeping a client's SII authorizations true over time: ending a relationship (REVOKE), changing the
firm's representative (REPLACE) and changing the permissions the firm requests (AUTHORIZE, the bot's
edit path).

Each change runs through the same job machinery as the first authorization (`services.jobs`:
`enrollment_job_create` / `enrollment_job_execute`): when the firm may make it with its own key
(`services.firm_changes`) or the client's certificate is still stored, the job is created at once;
otherwise the client is emailed a link to upload it again, and their consent creates the job
(`change_consent_give`). What a succeeded change writes on the company is
`jobs.lifecycle.JOB_KIND_OUTCOMES`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from onboarding.domain.display import permission_labels, rut_display
from onboarding.domain.rules import (
    company_requested_permissions,
    pending_change,
    representative_for_rut,
    sii_user_name,
)
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditAction,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobKind,
    JobLane,
    Relationship,
    Representative,
    Tenant,
)
from onboarding.selectors.changes import (
    companies_affected_by_representative,
    companies_with_stale_permissions,
)
from onboarding.selectors.consent import change_consent_terms
from onboarding.services.audit import audit_record
from onboarding.services.certificate_requests import change_certificate_request
from onboarding.services.certificates import company_certificates_destroy, company_usable_certificate
from onboarding.services.client import (
    client_consent_give,
    consent_preconditions_check,
)
from onboarding.services.errors import ServiceError
from onboarding.services.firm_changes import firm_key_change_job_create
from onboarding.services.jobs.lifecycle import enrollment_job_create
from onboarding.services.tenants import company_stage_set, representative_add
from sii_bot.rut import normalize_rut

logger = logging.getLogger(__name__)

__all__ = [
    "ChangeReport",
    "change_consent_give",
    "company_relationship_end",
    "permissions_sync",
    "representative_replace",
    "representative_replace_check",
]


# --- Helpers ---------------------------------------------------------------------------------


def _has_active_job(company: ClientCompany) -> bool:
    return EnrollmentJob.objects.filter(company=company, status__in=ACTIVE_JOB_STATUSES).exists()


def _ask_for_certificate(*, company: ClientCompany, what: str) -> bool:
    """Email the client (owner_email) asking them to upload their certificate again for `what`."""
    return change_certificate_request(company=company, what=what)


@dataclass
class ChangeReport:
    """What a bulk change did: jobs created at once, clients emailed, clients left as they were."""

    jobs: list[EnrollmentJob] = field(default_factory=list)
    emailed: list[ClientCompany] = field(default_factory=list)
    skipped: list[tuple[ClientCompany, str]] = field(default_factory=list)


# --- The job a change needs ----------------------------------------------------------------------


def _revoke_representative(company: ClientCompany) -> Representative:
    """The representative row for a REVOKE of `company.sii_user_rut` (created inactive if unknown)."""
    tenant = company.tenant
    holder = representative_for_rut(tenant=tenant, rut=company.sii_user_rut)
    if holder is None:
        holder = Representative.objects.create(
            tenant=tenant, rut=company.sii_user_rut, name=sii_user_name(company), is_active=False
        )
    return holder


def _create_pending_job(
    *, company: ClientCompany, certificate: Certificate, actor: AbstractBaseUser | None
) -> EnrollmentJob:
    change = pending_change(company)
    representative = _revoke_representative(company) if change.kind == JobKind.REVOKE else change.representative
    return enrollment_job_create(
        company=company,
        certificate=certificate,
        created_by=actor,
        representative=representative,
        kind=change.kind,
        old_user_rut=change.old_user_rut,
        old_user_name=change.old_user_name,
    )


# --- Ending a relationship (REVOKE) ----------------------------------------------------------


def company_relationship_end(*, company: ClientCompany, actor: AbstractBaseUser | None) -> EnrollmentJob | None:
    """End the firm's relationship with `company` and remove its representative from the SII.

    The relationship becomes ENDING (audited). If the SII holds nobody for the firm there it is ENDED
    at once (stage REVOKED). Else, with a usable stored certificate a REVOKE job is created now and
    returned; without one the client is emailed a link to upload it (None is returned; no email
    when the client is the actor: their page takes them there) and their consent creates the job.
    Raises ServiceError if the relationship already ended, if the client was already asked for the
    certificate to end it (`relationship_ending`), or if a job is in flight for this client.
    """
    with transaction.atomic():
        company = ClientCompany.objects.select_for_update().select_related("tenant").get(pk=company.pk)
        if company.relationship == Relationship.ENDED:
            raise ServiceError("La relación con este cliente ya terminó.", code="relationship_ended")
        if _has_active_job(company):
            raise ServiceError(
                "Hay un trabajo en curso para esta empresa. Espere a que termine antes de terminar la relación.",
                code="job_already_active",
            )
        if company.relationship == Relationship.ENDING and company_usable_certificate(company=company) is None:
            # Already asked for the certificate: a second click would only email the client again.
            # (With a usable certificate, ending again retries the removal: that path goes on.)
            raise ServiceError(
                "Ya le pedimos al cliente su certificado para terminar la relación. Cuando lo suba y confirme, "
                "quitaremos al representante del SII.",
                code="relationship_ending",
            )
        ClientCompany.objects.filter(pk=company.pk).update(relationship=Relationship.ENDING)
        company.relationship = Relationship.ENDING
        audit_record(
            tenant=company.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            company=company,
            summary=f"Término de la relación con {company.legal_name}",
            details={"relationship": Relationship.ENDING, "sii_user_rut": company.sii_user_rut},
        )
        if not company.sii_user_rut:
            ClientCompany.objects.filter(pk=company.pk).update(relationship=Relationship.ENDED)
            company.relationship = Relationship.ENDED
            company_stage_set(company=company, stage=CompanyStage.REVOKED)
            # Nothing can be re-run for an ended relationship: its stored keys go now, not at retention.
            company_certificates_destroy(company=company, reason="relationship_ended", actor=actor)
            audit_record(
                tenant=company.tenant,
                actor=actor,
                action=AuditAction.SETTINGS,
                company=company,
                summary=f"Relación con {company.legal_name} terminada: no había representante autorizado en el SII",
                details={"relationship": Relationship.ENDED},
            )
            return None
        own = firm_key_change_job_create(company=company, actor=actor)
        if own is not None:
            return own
        certificate = company_usable_certificate(company=company)
        if certificate is not None:
            return _create_pending_job(company=company, certificate=certificate, actor=actor)
        if actor is not None and actor.pk == company.owner_id:
            # The client ended it themself: their page sends them to the upload now. An email saying
            # "<firm> needs to make a change" would read as if the firm had asked.
            return None
        name = sii_user_name(company)
        _ask_for_certificate(
            company=company,
            what=f"Quitar a {name} (RUT {rut_display(company.sii_user_rut)}) como usuario autorizado de la empresa, "
            f"porque la relación con {company.tenant.name} terminó.",
        )
    return None


# --- Changing the representative (REPLACE) ---------------------------------------------------


def representative_replace_check(
    *,
    tenant: Tenant,
    old: Representative,
    new: Representative | None = None,
    new_rut: str = "",
    new_name: str = "",
) -> None:
    """Check, without writing, that `representative_replace` may replace `old` by `new` (or by the
    person `new_rut`/`new_name`); returns None when it may.

    Raises ServiceError (a Spanish message) when a representative is not the tenant's, the RUT or the
    name is missing or the RUT invalid, the new one is `old` themself (`same_representative`: the
    firm would be left with nobody in the clients' SII), or the typed RUT already belongs to another
    ACTIVE representative (`already_representative`: choose them in the list instead; typing their
    RUT would rename them). A typed RUT of an INACTIVE representative is allowed: they are reactivated.
    """
    if old.tenant_id != tenant.pk:
        raise ServiceError("Representante no encontrado.", code="not_found")
    if new is not None:
        if new.tenant_id != tenant.pk:
            raise ServiceError("Representante no encontrado.", code="not_found")
        if new.pk == old.pk or new.rut == old.rut:
            raise ServiceError("El nuevo representante debe ser otra persona.", code="same_representative")
        return
    if not new_rut.strip() or not new_name.strip():
        raise ServiceError("Indique el RUT y el nombre del nuevo representante.", code="new_missing")
    try:
        canonical = normalize_rut(new_rut)
    except ValueError as exc:
        raise ServiceError(f"RUT inválido: {exc}", code="invalid_rut") from None
    if canonical == old.rut:
        raise ServiceError(
            "Ese RUT es el del representante actual. Para reemplazarlo, ingrese el RUT de otra persona.",
            code="same_representative",
        )
    existing = Representative.objects.filter(tenant=tenant, rut=canonical, is_active=True).first()
    if existing is not None:
        raise ServiceError(
            f"Ese RUT ya es representante del estudio ({existing.name}): elíjalo en la lista de representantes "
            "vigentes.",
            code="already_representative",
        )


def representative_replace(
    *,
    tenant: Tenant,
    old: Representative,
    new: Representative | None = None,
    new_rut: str = "",
    new_name: str = "",
    actor: AbstractBaseUser | None,
) -> ChangeReport:
    """Replace the firm's representative `old` by `new` (or a new one from `new_rut`/`new_name`).

    `old` is deactivated (audited). For each affected client (ACTIVE relationship, the SII holds
    `old`): with a usable certificate and no job in flight, ONE REPLACE job (add the new, then remove
    the old); without a certificate, an email asking for it (their consent then creates the REPLACE
    job); clients with a job in flight are skipped (their next consent replaces). Returns the report.

    Raises ServiceError, before any write, for everything `representative_replace_check` refuses (the
    new one being `old` themself included).
    """
    with transaction.atomic():
        # Lock the tenant row: the checks below and the writes after them see the same representatives.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        representative_replace_check(tenant=tenant, old=old, new=new, new_rut=new_rut, new_name=new_name)
        if new is None:
            new = representative_add(tenant=tenant, rut=normalize_rut(new_rut), name=new_name)
        if not new.is_active:
            new.is_active = True
            new.save(update_fields=["is_active"])
        affected = list(companies_affected_by_representative(tenant=tenant, representative=old))
        old.is_active = False
        old.save(update_fields=["is_active"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"Representante reemplazado: {old.name} ({old.rut}) por {new.name} ({new.rut})",
            details={"old": old.rut, "new": new.rut, "affected": [c.pk for c in affected]},
        )
        report = ChangeReport()
        for company in affected:
            if _has_active_job(company):
                report.skipped.append((company, "job_already_active"))
                continue
            own = firm_key_change_job_create(
                company=company, actor=actor, kind=JobKind.REPLACE, representative=new, old_user_rut=old.rut,
                old_user_name=old.name, lane=JobLane.BACKGROUND,
            )
            if own is not None:
                report.jobs.append(own)
                continue
            certificate = company_usable_certificate(company=company)
            if certificate is not None:
                job = enrollment_job_create(
                    company=company,
                    certificate=certificate,
                    created_by=actor,
                    representative=new,
                    kind=JobKind.REPLACE,
                    old_user_rut=old.rut,
                    old_user_name=old.name,
                    # Bulk work for every affected client, with nobody watching each one.
                    lane=JobLane.BACKGROUND,
                )
                report.jobs.append(job)
            elif _ask_for_certificate(
                company=company,
                what=(
                    f"Autorizar a {new.name} (RUT {rut_display(new.rut)}), el nuevo representante de "
                    f"{tenant.name}, y quitar a {old.name} (RUT {rut_display(old.rut)}), el anterior."
                ),
            ):
                report.emailed.append(company)
            else:
                report.skipped.append((company, "no_email"))
    return report


# --- Changing the permissions (AUTHORIZE, edit path) -----------------------------------------


def permissions_sync(
    *, tenant: Tenant, actor: AbstractBaseUser | None, company: ClientCompany | None = None
) -> ChangeReport:
    """Bring every ACTIVE client whose SII permissions differ from the ones requested in it (its own
    choice, else the firm's setting: `domain.rules.company_permissions`) up to date; only `company`
    when given (an empty report when its permissions already match).

    With the firm's key or a usable certificate: a job now (AUTHORIZE → the bot's edit path, outcome
    "updated"; REPLACE if the SII holds an older representative). Without: an email asking for the
    certificate. Audited.
    """
    report = ChangeReport()
    with transaction.atomic():
        affected = list(companies_with_stale_permissions(tenant=tenant, company=company))
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=(
                f"Actualización de permisos en el SII solicitada para {company.legal_name}"
                if company is not None
                else f"Actualización de permisos en el SII solicitada para {len(affected)} cliente(s)"
            ),
            details={"affected": [c.pk for c in affected], "permissions": sorted(tenant.permissions)},
        )
        for client in affected:
            labels = ", ".join(permission_labels(company_requested_permissions(client)))
            if _has_active_job(client):
                report.skipped.append((client, "job_already_active"))
                continue
            own = firm_key_change_job_create(company=client, actor=actor, lane=JobLane.BACKGROUND)
            if own is not None:
                report.jobs.append(own)
                continue
            certificate = company_usable_certificate(company=client)
            if certificate is not None:
                report.jobs.append(_create_pending_job(company=client, certificate=certificate, actor=actor))
            elif _ask_for_certificate(
                company=client,
                what=f"Actualizar los permisos de {sii_user_name(client)} (RUT {rut_display(client.sii_user_rut)}) "
                f"a: {labels}.",
            ):
                report.emailed.append(client)
            else:
                report.skipped.append((client, "no_email"))
    return report


# --- The client's consent --------------------------------------------------------------------


def change_consent_give(
    *, company: ClientCompany, certificate: Certificate, user: AbstractBaseUser, terms_version: str
) -> EnrollmentJob:
    """The client's consent, whatever it is for: REVOKE (relationship ending), REPLACE (the SII holds
    another representative of the firm) or the first authorization / permission update.

    AUTHORIZE consents go through `client_consent_give`. For REVOKE/REPLACE the consent covers
    `selectors.change_consent_terms` (`terms_version` must match) and is audited.
    """
    terms = change_consent_terms(company=company)
    if terms is None:
        return client_consent_give(company=company, certificate=certificate, user=user, terms_version=terms_version)
    consent_preconditions_check(
        company=company, certificate=certificate, terms_version=terms_version, current_version=terms.version
    )
    with transaction.atomic():
        job = _create_pending_job(company=company, certificate=certificate, actor=user)
        ClientCompany.objects.filter(pk=company.pk).update(consent_edition=terms.edition)
        audit_record(
            tenant=company.tenant,
            actor=user,
            action=AuditAction.CONSENT,
            company=company,
            summary=terms.summary[:300],
            details={
                "job": str(job.pk),
                "kind": job.kind,
                "certificate": str(certificate.pk),
                "add_rut": terms.add_rut,
                "remove_rut": terms.remove_rut,
                "permissions": list(terms.permissions),
                "terms_version": terms.version,
                "terms_edition": terms.edition,
            },
        )
    return job
