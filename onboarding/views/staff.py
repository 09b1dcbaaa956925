"""The firm's pages (/estudio/<tenant_slug>/…): dashboard, CSV export, job detail and evidence,
invitations, re-runs, settings, team and audit log.

Thin views: every one goes through `staff_view`, which sends anonymous users to the login page and
resolves the member's role in the tenant of the URL with an access helper (404 for non-members and
for roles that may not use the page) *before* looking at the HTTP method, so another tenant's URLs
answer 404 to every method. Objects are then fetched through tenant-filtered selectors, so another
tenant's ids are 404 too. Writes go through services; their refusals are shown in Spanish.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import cache, wraps
from html import escape
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.dates import MONTHS_3
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import get_language
from django_htmx.http import HttpResponseClientRefresh

from onboarding import access, selectors, services
from onboarding.forms.staff import (
    PAGE_SIZE,
    AuditFilterForm,
    DashboardFilterForm,
    InvitationCsvForm,
    InvitationForm,
    MemberAddForm,
    MemberPasswordForm,
    MemberRoleForm,
    RepresentativeForm,
    RepresentativeReplaceForm,
    TenantSettingsForm,
)
from onboarding.models import ArtifactKind, ClientCompany, CompanyStage, JobStatus, Membership, Role
from onboarding.selectors import claims as claim_selectors
from onboarding.templatetags.staff_format import rut_display

StaffView = Callable[..., HttpResponse]

# Spanish names of the bot's steps for the timeline; an unknown step shows its code.
# Values match `sii_bot.Step` (and the client side's JOB_STEPS), plus the job-level events.
STEP_LABELS: dict[str, str] = {
    "queued": "Solicitud recibida",
    "retry": "Reintento programado",
    "waiting": "Esperando turno en el SII",
    "open_page": "Abrir Mantención de usuarios autorizados",
    "login": "Ingreso con certificado digital",
    "company": "RUT de la empresa",
    "user_list": "Lista de usuarios autorizados",
    "new_user": "Ingresar Nuevo Usuario",
    "fill_form": "RUT del usuario y permisos",
    "confirm": "Confirmación",
    "save": "Grabar Usuario",
    "result": "Resultado",
    "logout": "Cierre de sesión",
    "finished": "Terminado",
    "late_result": "Resultado recibido tarde",
    "superseded": "No fue necesario",
    "certificate_deleted": "Certificado eliminado por el cliente",
}
EVENT_STATUS_LABELS: dict[str, str] = {
    "info": "",
    "started": "En curso",
    "done": "Listo",
    "ok": "Listo",
    "succeeded": "Listo",
    "failed": "Con error",
    "skipped": "Omitido",
}


def _step_label(step: str) -> str:
    """The Spanish name of a bot step or job event (its code, humanized, if unknown)."""
    return STEP_LABELS.get(step, step.replace("_", " ").capitalize())


# Live refresh cadence of queued/running rows and of an active job's page.
POLL_EVERY = "every 3s"
_ROW_ID = re.compile(r"[0-9]{1,18}")
LIVE_ROWS_MAX = PAGE_SIZE


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


def _context(membership: Membership, section: str, **extra: Any) -> dict[str, Any]:
    """What every firm page gets: the member, the tenant and which nav section is current."""
    return {"membership": membership, "tenant": membership.tenant, "section": section, **extra}


# --- Dashboard ------------------------------------------------------------------------------------

SORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("nombre", "Empresa"),
    ("rut", "RUT"),
    ("estado", "Estado"),
    ("cambio", "Último cambio"),
)


def _sort_headers(current: str) -> list[dict[str, str]]:
    """Per sortable column: its label, the `orden` value a click sets, and its aria-sort state."""
    headers = []
    for key, label in SORT_COLUMNS:
        if current.lstrip("-") == key:
            state = "descending" if current.startswith("-") else "ascending"
            next_sort = key if current.startswith("-") else f"-{key}"
        else:
            state = "none"
            # Dates read best newest-first; names and RUTs in natural order.
            next_sort = f"-{key}" if key == "cambio" else key
        headers.append({"key": key, "label": label, "state": state, "next": next_sort})
    return headers


# The Spanish names of the stages, for the rows' badges.
_STAGE_LABELS: dict[str, str] = dict(CompanyStage.choices)
_URL_PLACEHOLDER = uuid.UUID(int=0)


class _KnownCountPaginator(Paginator):
    """A Paginator that is told how many objects there are (from the stage counts the page shows
    anyway), so it does not run a COUNT(*) over the tenant's companies; `count=None` counts."""

    def __init__(self, object_list: Any, per_page: int, *, count: int | None = None) -> None:
        super().__init__(object_list, per_page)
        if count is not None:
            self.__dict__["count"] = count  # primes the cached_property


def _known_count(filters: selectors.CompanyFilters, counts: dict[str, int]) -> int | None:
    """How many companies `filters` select, when the stage counts already say it (no search, no
    dates); None when only a COUNT query can tell."""
    if filters.query or filters.date_from or filters.date_to:
        return None
    return counts.get(filters.stage, 0) if filters.stage else sum(counts.values())


# A failure message longer than this is cut (with "…") on the dashboard; the job's page has it whole.
_FAILURE_MESSAGE_CHARS = 160


@cache
def _month_abbreviations(language: str | None) -> tuple[str, ...]:
    """"Ene", "Feb"… by month number (index 0 unused), as the `date:"M"` filter prints them in `language`."""
    with translation.override(language):
        return ("",) + tuple(str(MONTHS_3[month]).title() for month in range(1, 13))


def _rows_html(rows: list[selectors.DashboardRow], *, membership: Membership, oob: bool = False) -> SafeString:
    """The table rows (`<tr>`, one per company) of the dashboard and of its live refresh.

    Built here rather than with a template include per row: 50 rows through the template engine
    (≈ 1,600 variable lookups, two date filters and a reverse() each) were ≈ 70 % of the page's CPU;
    this is the same markup for a few percent of it. Everything that comes from the database goes
    through `escape` (what autoescaping does); the rest is fixed text.
    """
    tenant_slug = membership.tenant.slug
    # One reverse() for the page: each row's detail link is this URL with its job's id in place.
    job_url_head, _, job_url_tail = escape(
        reverse("staff:job_detail", kwargs={"tenant_slug": tenant_slug, "job_id": _URL_PLACEHOLDER})
    ).partition(str(_URL_PLACEHOLDER))
    months = _month_abbreviations(get_language())
    local_zone = timezone.get_current_timezone()
    can_rerun = membership.can_rerun
    oob_attribute = ' hx-swap-oob="true"' if oob else ""
    parts: list[str] = []
    for row in rows:
        job = row.job
        pk = row.pk
        name = escape(row.legal_name)
        failed = row.stage == CompanyStage.FAILED
        if can_rerun:
            select = ""
            # Only what a re-run can take: a failed attempt whose certificate is still stored (the
            # bulk re-run would refuse the rest, and the job's page says why).
            if failed and job is not None and job.status == JobStatus.FAILED and job.certificate_kept:
                select = (
                    f'<input type="checkbox" name="job" value="{job.pk}" form="rerun-form" class="rerun-pick" '
                    f'id="pick-{pk}"><label for="pick-{pk}" class="visually-hidden">Seleccionar {name} para '
                    "re-ejecutar</label>"
                )
            select = f'<td class="select">{select}</td>'
        else:
            select = ""
        contact = ""
        if row.owner_name or row.owner_email:
            separator = " · " if row.owner_name and row.owner_email else ""
            contact = (
                f'<span class="muted small contact">{escape(row.owner_name)}{separator}'
                f"{escape(row.owner_email)}</span>"
            )
        if row.claimants > 1:  # several people registered it themselves (CompanyClaim): see the job's page
            contact += f'<span class="small contact claimants">{row.claimants} personas registraron esta empresa</span>'

        state = f'<span class="badge {escape(row.stage)}">{escape(_STAGE_LABELS.get(row.stage, row.stage))}</span>'
        if job is not None:
            state += f' <span class="muted small nowrap">intento {job.attempt}</span>'
            if failed and job.failure_message:
                code = f" <code>{escape(job.failure_code)}</code>" if job.failure_code else ""
                message = job.failure_message
                if len(message) > _FAILURE_MESSAGE_CHARS:  # Truncator walks every character: only when needed
                    message = Truncator(message).chars(_FAILURE_MESSAGE_CHARS)
                message = escape(message)
                state += f'<span class="row-failure">{message}{code}</span>'
            link = (
                f'<a href="{job_url_head}{job.pk}{job_url_tail}">Ver detalle'
                f'<span class="visually-hidden"> de {name}</span></a>'
            )
        else:
            link = '<span class="muted small">Sin intentos</span>'
        changed = row.stage_changed_at.astimezone(local_zone)
        parts.append(
            f'\n<tr id="company-{pk}" class="stage-{escape(row.stage)}"{oob_attribute}>\n'
            f"  {select}\n"
            f'  <th scope="row" class="company" data-label="Empresa"><span class="company-name">{name}</span>'
            f"{contact}</th>\n"
            f'  <td class="nowrap" data-label="RUT">{escape(rut_display(row.rut))}</td>\n'
            f'  <td class="state" data-label="Estado">{state}</td>\n'
            f'  <td class="changed" data-label="Último cambio"><time datetime="{changed.isoformat()}">'
            f"{changed.day} {months[changed.month]} {changed.year} {changed:%H:%M}</time></td>\n"
            f'  <td class="row-link" data-label="">{link}</td>\n'
            "</tr>\n"
        )
    # In the live refresh each row travels inside a <template> (a bare <tr> can't be parsed
    # outside a table) and replaces the row with its id (hx-swap-oob).
    if oob:
        return mark_safe("".join(f"<template>{part}</template>\n" for part in parts))  # escaped above
    return mark_safe("".join(parts))  # escaped above


# The dashboard's filter form, rendered, by everything its markup depends on. Django renders each
# widget (and each <option>) through templates: ≈ 0.5 ms a page for markup that only changes with
# the filters typed. Per process, so a deploy never serves an old version; bounded in entries and
# in the size of what is remembered (the values come from the URL).
_FILTER_FORMS: dict[tuple[str, ...], SafeString] = {}
_FILTER_FORMS_MAX = 256
_FILTER_FORM_KEY_MAX = 400


def _filter_form_html(request: HttpRequest, context: dict[str, Any]) -> SafeString:
    """The filter form of the dashboard (`staff/_filter_form.html`) for this request's filters."""
    form = context["form"]
    values = urlencode([(name, value) for name in form.fields for value in request.GET.getlist(name)])
    key = (get_script_prefix(), context["tenant"].slug, get_language() or "", values)
    html = _FILTER_FORMS.get(key)
    if html is None:
        html = render_to_string("staff/_filter_form.html", context)
        if len(values) <= _FILTER_FORM_KEY_MAX:
            if len(_FILTER_FORMS) >= _FILTER_FORMS_MAX:
                _FILTER_FORMS.clear()
            _FILTER_FORMS[key] = html
    return html


@staff_view()
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Counts by stage, and the filtered, searchable, sortable, paginated list of client companies."""
    tenant = membership.tenant
    form = DashboardFilterForm(request.GET)
    form.is_valid()
    filters = form.filters()
    counts = selectors.company_stage_counts_cached(tenant=tenant)
    paginator = _KnownCountPaginator(
        selectors.company_dashboard_values(tenant=tenant, filters=filters), PAGE_SIZE, count=_known_count(filters, counts)
    )
    page = paginator.get_page(request.GET.get("pagina"))
    rows = selectors.dashboard_rows(tenant=tenant, companies=page.object_list)
    page.object_list = rows
    context = _context(
        membership,
        "dashboard",
        form=form,
        filters=filters,
        page=page,
        rows=rows,
        rows_html=_rows_html(rows, membership=membership),
        live_ids=selectors.active_company_ids(rows),
        poll_every=POLL_EVERY,
        stage_cards=_stage_cards(counts, filters.stage),
        total=sum(counts.values()),
        sort_headers=_sort_headers(filters.sort),
        filtered=bool(filters.stage or filters.query or filters.date_from or filters.date_to),
    )
    context["filter_form_html"] = _filter_form_html(request, context)
    return render(request, "staff/dashboard.html", context)


def _stage_cards(counts: dict[str, int], current: str) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "label": label, "count": counts.get(stage, 0), "current": stage == current}
        for stage, label in CompanyStage.choices
    ]


@staff_view()
def dashboard_rows(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The live refresh: the rows named in `?ids=` re-rendered out of band, the counts, and a new
    poller that keeps polling only while some of those rows are still queued or running."""
    tenant = membership.tenant
    ids: list[int] = []
    for part in request.GET.get("ids", "").split(",")[:LIVE_ROWS_MAX]:
        # ASCII digits that fit a database integer ("²" is a digit to str.isdigit, and a 30-digit id
        # overflowed SQLite: both were 500s); each row once.
        part = part.strip()
        if _ROW_ID.fullmatch(part) and int(part) not in ids:
            ids.append(int(part))
    rows = selectors.company_rows_by_ids(tenant=tenant, company_ids=ids)
    counts = selectors.company_stage_counts_cached(tenant=tenant)
    current_stage = request.GET.get("estado", "")
    current_stage = current_stage if current_stage in CompanyStage.values else ""
    context = _context(
        membership,
        "dashboard",
        rows_html=_rows_html(rows, membership=membership, oob=True),
        live_ids=selectors.active_company_ids(rows),
        poll_every=POLL_EVERY,
        stage_cards=_stage_cards(counts, current_stage),
        current_stage=current_stage,
        total=sum(counts.values()),
    )
    response = render(request, "staff/_live_rows.html", context)
    response["Cache-Control"] = "no-store"
    return response


# Cells starting with these are formulas to spreadsheet programs (CSV injection, OWASP).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """The text of a CSV cell, prefixed with ' when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


EXPORT_HEADER = (
    "RUT",
    "Razón social",
    "Contacto",
    "Correo",
    "Estado",
    "Último cambio",
    "Creada",
    "Intento",
    "Estado del intento",
    "Código de error",
    "Mensaje de error",
)


def _local(value: dt.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def _export_lines(companies: Iterable[ClientCompany]) -> Iterator[str]:
    writer = csv.writer(_Echo(), delimiter=";")
    # BOM + ';': what Excel configured for Chile opens directly with accents and columns right.
    yield "\ufeff" + writer.writerow(EXPORT_HEADER)
    for company in companies:
        job = selectors.company_latest_job(company)
        yield writer.writerow(
            [
                csv_safe(cell)
                for cell in (
                    company.rut,
                    company.legal_name,
                    company.owner_name,
                    company.owner_email,
                    company.get_stage_display(),
                    _local(company.stage_changed_at),
                    _local(company.created_at),
                    job.attempt if job else "",
                    job.get_status_display() if job else "",
                    job.failure_code if job else "",
                    job.failure_message if job else "",
                )
            ]
        )


@staff_view()
def dashboard_export(request: HttpRequest, membership: Membership) -> StreamingHttpResponse:
    """A CSV (streamed, `;`-separated, UTF-8 with BOM) of every company the same filters show."""
    form = DashboardFilterForm(request.GET)
    form.is_valid()
    rows = selectors.company_export_rows(tenant=membership.tenant, filters=form.filters())
    response = StreamingHttpResponse(_export_lines(rows), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="clientes-{membership.tenant.slug}-{stamp}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- Jobs -----------------------------------------------------------------------------------------


@staff_view()
def job_detail(request: HttpRequest, membership: Membership, job_id: Any) -> HttpResponse:
    """One attempt: timeline with durations, evidence, the SII's result or the failure, all attempts.

    While the job is queued or running the live section polls this URL; an htmx request gets only
    that section (without the trigger once the job has finished).
    """
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    if request.htmx and job.is_finished:
        # The poll saw the end: reload the whole page so the evidence, the attempts and the
        # re-run button appear too (the reloaded page no longer polls).
        return HttpResponseClientRefresh()
    events = list(selectors.job_events(job=job))
    context = _context(
        membership,
        "dashboard",
        job=job,
        timeline=[
            {
                "line": line,
                "label": _step_label(line.step),
                "status_label": EVENT_STATUS_LABELS.get(line.status, line.status),
            }
            for line in selectors.job_step_timings(events=events)
        ],
        total_duration=(job.finished_at - job.started_at) if job.finished_at and job.started_at else None,
        artifacts=[
            {"artifact": artifact, "label": _step_label(artifact.step)} for artifact in selectors.job_artifacts(job=job)
        ],
        attempts=list(selectors.job_attempts(job=job).select_related("created_by", "claim")),
        # Everyone who registered the company themselves, and who was proven its owner (CompanyClaim).
        claims=claim_selectors.company_claim_list(tenant=membership.tenant, company_id=job.company_id),
        has_rerun=selectors.job_has_rerun(job=job),
        certificate_usable=bool(job.certificate and job.certificate.is_usable),
        result=job.result if isinstance(job.result, dict) else None,
        poll_every=POLL_EVERY,
    )
    if request.htmx:
        response = render(request, "staff/_job_live.html", context)
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "staff/job_detail.html", context)


@staff_view()
def job_artifact(request: HttpRequest, membership: Membership, job_id: Any, artifact_id: Any) -> HttpResponse:
    """Decrypt one piece of evidence for this tenant's member: a PNG inline, or the SII page's HTML
    as text/plain (`?descargar=1` as an attachment) — never rendered as live HTML on our origin."""
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    artifact = selectors.job_artifact_get(job=job, artifact_id=artifact_id)
    if artifact is None:
        raise Http404
    content = services.job_artifact_open(artifact=artifact)
    stamp = timezone.localtime(artifact.created_at).strftime("%Y%m%d-%H%M%S")
    base_name = f"intento{job.attempt}-{artifact.step}-{stamp}"
    if artifact.kind == ArtifactKind.SCREENSHOT:
        response = HttpResponse(content, content_type="image/png")
        response["Content-Disposition"] = f'inline; filename="{base_name}.png"'
    else:
        response = HttpResponse(content, content_type="text/plain; charset=utf-8")
        disposition = "attachment" if request.GET.get("descargar") else "inline"
        response["Content-Disposition"] = f'{disposition}; filename="{base_name}.html.txt"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser ignored the type, the page would run with no scripts, forms or origin.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def job_rerun(request: HttpRequest, membership: Membership, job_id: Any) -> HttpResponse:
    """Re-run one failed job (owners and admins); go to the new attempt, or back with the reason."""
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    try:
        new_job = services.enrollment_job_rerun(job=job, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
        return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job.pk)
    messages.success(request, f"Re-ejecución en cola: intento {new_job.attempt} de {job.company.legal_name}.")
    return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=new_job.pk)


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def rerun_bulk(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Re-run the failed jobs ticked on the dashboard (owners and admins), with a report per row."""
    job_ids = request.POST.getlist("job")
    if not job_ids:
        messages.warning(request, "Seleccione al menos un cliente con error para re-ejecutar.")
        return redirect(_dashboard_url(membership, request.POST.get("volver", "")))
    try:
        outcomes = services.enrollment_jobs_rerun(tenant=membership.tenant, job_ids=job_ids, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
        return redirect(_dashboard_url(membership, request.POST.get("volver", "")))
    context = _context(
        membership,
        "dashboard",
        outcomes=outcomes,
        done=sum(outcome.ok for outcome in outcomes),
        refused=sum(not outcome.ok for outcome in outcomes),
        back_url=_dashboard_url(membership, request.POST.get("volver", "")),
    )
    return render(request, "staff/rerun_report.html", context)


def _dashboard_url(membership: Membership, query_string: str) -> str:
    """The dashboard URL with the filters the user had (only a query string is accepted back)."""
    url = reverse("staff:dashboard", kwargs={"tenant_slug": membership.tenant.slug})
    query_string = query_string.lstrip("?")
    if query_string and "/" not in query_string and ":" not in query_string:
        url += "?" + query_string
    return url


# --- Invitations ----------------------------------------------------------------------------------


def _invitations_page(request: HttpRequest, membership: Membership, **forms: Any) -> HttpResponse:
    invitations = selectors.invitation_list(tenant=membership.tenant)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("pagina"))
    now = timezone.now()
    rows = [{"invitation": inv, "status": selectors.invitation_status(inv, now=now)} for inv in page.object_list]
    context = _context(
        membership,
        "invitations",
        page=page,
        rows=rows,
        form=forms.get("form") or InvitationForm(),
        csv_form=forms.get("csv_form") or InvitationCsvForm(),
        ttl_days=services.INVITATION_TTL_DAYS,
    )
    return render(request, "staff/invitations.html", context, status=forms.get("status", 200))


@staff_view(methods=("GET", "POST"))
def invitations(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The invitations sent (status, resend, revoke) and the forms to invite one client or a CSV."""
    if request.method != "POST":
        return _invitations_page(request, membership)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invitation_create(
                tenant=membership.tenant,
                rut=form.cleaned_data["rut"],
                legal_name=form.cleaned_data["razon_social"],
                contact_name=form.cleaned_data["nombre"],
                email=form.cleaned_data["email"],
                actor=request.user,
            )
        except services.ServiceError as error:
            form.add_error("rut" if error.code in ("company_exists", "invalid_rut") else None, error.message)
        else:
            if invitation.sent_at:
                messages.success(request, f"Invitación enviada a {invitation.email} para {invitation.company.legal_name}.")
            else:
                messages.warning(
                    request,
                    f"Registramos la invitación de {invitation.company.legal_name}, pero el correo no se pudo "
                    "enviar: use «Reenviar» en unos minutos.",
                )
            return redirect("staff:invitations", tenant_slug=membership.tenant.slug)
    return _invitations_page(request, membership, form=form, status=200)


@staff_view(methods=("GET", "POST"))
def invitations_import(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Invite from a CSV file and show, row by row, who was invited and why the others were not."""
    if request.method != "POST":
        return redirect("staff:invitations", tenant_slug=membership.tenant.slug)
    csv_form = InvitationCsvForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _invitations_page(request, membership, csv_form=csv_form)
    report = services.invitations_import_csv(
        tenant=membership.tenant, content=csv_form.cleaned_data["archivo"], actor=request.user
    )
    if report.file_error:
        csv_form.add_error("archivo", report.file_error)
        return _invitations_page(request, membership, csv_form=csv_form)
    return render(request, "staff/invitations_import_report.html", _context(membership, "invitations", report=report))


@staff_view(methods=("POST",))
def invitation_resend(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    """Send an open (or expired) invitation again, with a new expiry."""
    invitation = selectors.invitation_get(tenant=membership.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise Http404
    try:
        services.invitation_resend(invitation=invitation, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitación reenviada a {invitation.email}.")
    return redirect("staff:invitations", tenant_slug=membership.tenant.slug)


@staff_view(methods=("POST",))
def invitation_revoke(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    """Revoke an invitation: its link stops working at once."""
    invitation = selectors.invitation_get(tenant=membership.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise Http404
    try:
        services.invitation_revoke(invitation=invitation, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitación a {invitation.email} revocada: el enlace ya no funciona.")
    return redirect("staff:invitations", tenant_slug=membership.tenant.slug)


# --- Settings (owners) ------------------------------------------------------------------------------


def _settings_page(request: HttpRequest, membership: Membership, **forms: Any) -> HttpResponse:
    tenant = membership.tenant
    context = _context(
        membership,
        "settings",
        form=forms.get("form") or TenantSettingsForm.for_tenant(tenant),
        representative_form=forms.get("representative_form") or RepresentativeForm(),
        representatives=list(selectors.representative_list(tenant=tenant)),
    )
    return render(request, "staff/settings.html", context)


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def tenant_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The firm's name, SII environment, permissions requested, notification emails, representatives."""
    if request.method != "POST":
        return _settings_page(request, membership)
    form = TenantSettingsForm(request.POST)
    if form.is_valid():
        try:
            changes = services.tenant_settings_update(tenant=membership.tenant, actor=request.user, **form.cleaned_data)
        except services.ServiceError as error:
            field = {"invalid_email": "notification_emails", "name_missing": "name"}.get(error.code)
            form.add_error(field, error.message)
        else:
            messages.success(request, "Configuración guardada." if changes else "No había cambios que guardar.")
            # Permission changes (services.changes): offer to bring the clients' SII accounts up to date.
            membership.tenant.refresh_from_db()
            if selectors.companies_with_stale_permissions(tenant=membership.tenant).exists():
                return redirect("staff:permissions_sync", tenant_slug=membership.tenant.slug)
            return redirect("staff:settings", tenant_slug=membership.tenant.slug)
    return _settings_page(request, membership, form=form)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_add(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Add a representative to authorize in new jobs, or reactivate an inactive one with that RUT (the
    message says which, and the name it had if it changes); an active one's RUT is refused."""
    form = RepresentativeForm(request.POST)
    if form.is_valid():
        previous = selectors.representative_get_by_rut(tenant=membership.tenant, rut=form.cleaned_data["rut"])
        try:
            representative = services.representative_create(
                tenant=membership.tenant, rut=form.cleaned_data["rut"], name=form.cleaned_data["name"], actor=request.user
            )
        except services.ServiceError as error:
            rut_codes = ("invalid_rut", "not_a_person", "already_representative")
            form.add_error("rut" if error.code in rut_codes else None, error.message)
        else:
            if previous is None:
                messages.success(request, f"Representante {representative.name} agregado.")
            elif previous.name != representative.name:
                messages.success(
                    request, f"Representante {representative.name} reactivado (antes figuraba como {previous.name})."
                )
            else:
                messages.success(request, f"Representante {representative.name} reactivado.")
            return redirect("staff:settings", tenant_slug=membership.tenant.slug)
    return _settings_page(request, membership, representative_form=form)


def _representative_or_404(membership: Membership, representative_id: int) -> Any:
    representative = selectors.representative_get(tenant=membership.tenant, representative_id=representative_id)
    if representative is None:
        raise Http404
    return representative


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_deactivate(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Stop authorizing a representative in new jobs (refused for the last active one)."""
    representative = _representative_or_404(membership, representative_id)
    try:
        services.representative_deactivate(representative=representative, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{representative.name} ya no se autorizará en nuevas solicitudes.")
    return redirect("staff:settings", tenant_slug=membership.tenant.slug)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_reactivate(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Authorize a deactivated representative again in new jobs."""
    representative = _representative_or_404(membership, representative_id)
    try:
        services.representative_reactivate(representative=representative, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{representative.name} vuelve a estar vigente.")
    return redirect("staff:settings", tenant_slug=membership.tenant.slug)


# --- Team (owners) ----------------------------------------------------------------------------------


def _team_page(request: HttpRequest, membership: Membership, form: MemberAddForm | None = None) -> HttpResponse:
    members = list(selectors.member_list(tenant=membership.tenant))
    context = _context(
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
        messages.success(request, f"Usted salió del equipo de {membership.tenant.name}.")
        return redirect("home")
    messages.success(request, f"{member.user.get_username()} ya no es parte del equipo.")
    return redirect("staff:team", tenant_slug=membership.tenant.slug)


# --- Audit (owners) ---------------------------------------------------------------------------------


@staff_view(access_check=access.owner_membership_or_404)
def audit(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Who did what and when, newest first, filterable by action, 50 per page."""
    form = AuditFilterForm(request.GET)
    action = form.cleaned_data.get("accion", "") if form.is_valid() else ""
    page = Paginator(selectors.audit_filtered(tenant=membership.tenant, action=action), PAGE_SIZE).get_page(
        request.GET.get("pagina")
    )
    return render(request, "staff/audit.html", _context(membership, "audit", form=form, page=page))


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


# --- Keeping SII authorizations true over time (services.changes) ------------------------------------
#
# Revocation (ending a client relationship), change of representative and permission changes. Staff
# with the re-run role end relationships; owners change the representative and the permissions.

# The removal steps the bot reports for REVOKE / REPLACE jobs, with the bot's own Spanish labels.
STEP_LABELS.update({value: label for value, label in selectors.job_step_flow(kind="revoke") if value not in STEP_LABELS})


def _company_or_404(membership: Membership, company_id: int) -> ClientCompany:
    return access.staff_company_or_404(membership=membership, company_id=company_id)


@staff_view(methods=("GET", "POST"), access_check=access.rerun_membership_or_404)
def company_end(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """End the relationship with a client: GET asks for confirmation (who will be removed from the
    SII), POST ends it (a REVOKE job now, or an email asking the client for the certificate)."""
    company = _company_or_404(membership, company_id)
    if request.method == "POST":
        try:
            job = services.company_relationship_end(company=company, actor=request.user)
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            if job is not None:
                messages.success(request, f"Relación terminada: quitando a {job.user_name} del SII de {company.legal_name}.")
                return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job.pk)
            company.refresh_from_db()
            if company.relationship == "ended":
                messages.success(request, f"Relación con {company.legal_name} terminada: no había representante autorizado en el SII.")
            else:
                messages.success(
                    request,
                    f"Relación con {company.legal_name} en término: le pedimos al cliente que suba su certificado "
                    "para quitar al representante en el SII.",
                )
        return redirect("staff:dashboard", tenant_slug=membership.tenant.slug)
    holder = services.company_usable_certificate(company=company)
    return render(
        request,
        "staff/company_end.html",
        _context(
            membership,
            "dashboard",
            company=company,
            holder_name=services.changes._sii_user_name(company) if company.sii_user_rut else "",
            certificate_usable=holder is not None,
        ),
    )


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def representative_replace(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Replace a representative: choose the new one (an active one, or add one), then confirm on a
    page listing the affected clients; confirming creates the REPLACE jobs and emails the rest.

    The choice goes through `services.representative_replace_check` before the confirmation page is
    shown: the old one themself (or an active representative typed instead of chosen) is refused
    there, with the error on the RUT field."""
    tenant = membership.tenant
    old = _representative_or_404(membership, representative_id)
    candidates = [rep for rep in selectors.representative_list(tenant=tenant) if rep.is_active and rep.pk != old.pk]
    form = RepresentativeReplaceForm(request.POST if request.method == "POST" else None, candidates=candidates)
    new_rut = str(form.data.get("nuevo_rut", "")).strip()
    new_name = str(form.data.get("nuevo_nombre", "")).strip()
    new = None
    returning = None  # an inactive representative typed as the new one: the replacement reactivates them
    confirming = False
    if form.is_valid():
        new = form.new
        if new is None:
            new_rut, new_name = form.cleaned_data["nuevo_rut"], form.cleaned_data["nuevo_nombre"]
        kwargs: dict[str, Any] = {"tenant": tenant, "old": old, "new": new}
        if new is None:
            kwargs.update(new_rut=new_rut, new_name=new_name)
        confirmed = request.POST.get("confirmar") == "1"
        try:
            if confirmed:
                report = services.representative_replace(**kwargs, actor=request.user)
            else:
                services.representative_replace_check(**kwargs)
        except services.ServiceError as error:
            rut_codes = ("invalid_rut", "same_representative", "already_representative")
            form.add_error("nuevo_rut" if new is None and error.code in rut_codes else None, error.message)
        else:
            if confirmed:
                messages.success(
                    request,
                    f"Representante reemplazado. Trabajos creados: {len(report.jobs)}; clientes a los que se pidió "
                    f"el certificado: {len(report.emailed)}; sin cambios por ahora: {len(report.skipped)}.",
                )
                return redirect("staff:dashboard", tenant_slug=tenant.slug)
            confirming = True
            if new is None:
                returning = selectors.representative_get_by_rut(tenant=tenant, rut=new_rut)
    affected = list(selectors.companies_affected_by_representative(tenant=tenant, representative=old))
    rows = [{"company": c, "certificate_usable": services.company_usable_certificate(company=c) is not None} for c in affected]
    return render(
        request,
        "staff/representative_replace.html",
        _context(
            membership,
            "settings",
            old=old,
            candidates=candidates,
            form=form,
            new=new,
            new_rut=new_rut,
            new_name=new_name.upper(),
            returning=returning,
            chosen=request.POST.get("nuevo", ""),
            confirming=confirming,
            rows=rows,
        ),
    )


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def permissions_sync(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Clients whose SII permissions differ from the ones the firm requests now; POST ("Actualizar en
    el SII") creates their jobs and emails the clients without a stored certificate."""
    tenant = membership.tenant
    if request.method == "POST":
        report = services.permissions_sync(tenant=tenant, actor=request.user)
        messages.success(
            request,
            f"Actualización solicitada. Trabajos creados: {len(report.jobs)}; clientes a los que se pidió el "
            f"certificado: {len(report.emailed)}; sin cambios por ahora: {len(report.skipped)}.",
        )
        return redirect("staff:dashboard", tenant_slug=tenant.slug)
    affected = list(selectors.companies_with_stale_permissions(tenant=tenant))
    rows = [{"company": c, "certificate_usable": services.company_usable_certificate(company=c) is not None} for c in affected]
    return render(request, "staff/permissions_sync.html", _context(membership, "settings", rows=rows))
