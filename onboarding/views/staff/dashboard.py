"""The dashboard: counts by stage, the companies' rows (and their live refresh), the CSV export and
the bulk re-run of failed jobs.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import uuid
from collections.abc import Iterable, Iterator
from functools import cache
from html import escape
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone, translation
from django.utils.dates import MONTHS_3
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import get_language

from onboarding import access, selectors, services
from onboarding.domain import display
from onboarding.domain.display import rut_display
from onboarding.forms.staff import PAGE_SIZE, DashboardFilterForm
from onboarding.models import ClientCompany, CompanyStage, JobStatus, Membership, Tenant
from onboarding.selectors.access import ACCESS_PROBLEM_LABELS
from onboarding.views.staff.common import POLL_EVERY, dashboard_url, staff_context, staff_view

# The live refresh re-renders at most a page of rows, named by ids that fit a database integer.
_ROW_ID = re.compile(r"[0-9]{1,18}")
LIVE_ROWS_MAX = PAGE_SIZE

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
    if filters.query or filters.date_from or filters.date_to or filters.access:
        return None
    return counts.get(filters.stage, 0) if filters.stage else sum(counts.values())


# A failure message longer than this is cut (with "…") on the dashboard; the job's page has it whole.
_FAILURE_MESSAGE_CHARS = 160


@cache
def _month_abbreviations(language: str | None) -> tuple[str, ...]:
    """"Ene", "Feb"… by month number (index 0 unused), as the `date:"M"` filter prints them in `language`."""
    with translation.override(language):
        return ("",) + tuple(str(MONTHS_3[month]).title() for month in range(1, 13))


_COMPANY_PLACEHOLDER = 987654321


def _rows_html(
    rows: list[selectors.DashboardRow], *, membership: Membership, csrf_token: str = "", oob: bool = False,
    certificates_asked: dict[int, dt.datetime] | None = None,
) -> SafeString:
    """The table rows (`<tr>`, one per company) of the dashboard and of its live refresh.

    Built here rather than with a template include per row: 50 rows through the template engine
    (≈ 1,600 variable lookups, two date filters and a reverse() each) were ≈ 70 % of the page's CPU;
    this is the same markup for a few percent of it. Everything that comes from the database goes
    through `escape` (what autoescaping does); the rest is fixed text. `csrf_token` is the request's,
    for the rows' own buttons (owners and admins). `certificates_asked`: when clients were recently
    asked for a new certificate (`_certificates_asked`): their rows say so instead of offering it again.
    """
    tenant_slug = membership.tenant.slug
    # One reverse() for the page: each row's detail link is this URL with its job's id in place.
    job_url_head, _, job_url_tail = escape(
        reverse("staff:job_detail", kwargs={"tenant_slug": tenant_slug, "job_id": _URL_PLACEHOLDER})
    ).partition(str(_URL_PLACEHOLDER))
    retry_url_head, _, retry_url_tail = escape(
        reverse("staff:job_retry_now", kwargs={"tenant_slug": tenant_slug, "job_id": _URL_PLACEHOLDER})
    ).partition(str(_URL_PLACEHOLDER))
    request_url_head, _, request_url_tail = escape(
        reverse("staff:company_certificate_request", kwargs={"tenant_slug": tenant_slug, "company_id": _COMPANY_PLACEHOLDER})
    ).partition(str(_COMPANY_PLACEHOLDER))
    company_url_head, _, company_url_tail = escape(
        reverse("staff:company_detail", kwargs={"tenant_slug": tenant_slug, "company_id": _COMPANY_PLACEHOLDER})
    ).partition(str(_COMPANY_PLACEHOLDER))
    csrf_input = f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf_token)}">'
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
        failed_job = failed and job is not None and job.status == JobStatus.FAILED
        # A failed attempt whose certificate is gone: no re-run can take it (the bulk re-run would
        # refuse it); the row says why and offers to ask the client for a new certificate.
        blocked = failed_job and not job.certificate_kept  # type: ignore[union-attr]
        if can_rerun:
            select = ""
            if failed_job and not blocked:
                select = (
                    f'<input type="checkbox" name="job" value="{job.pk}" form="rerun-form" class="rerun-pick" '  # type: ignore[union-attr]
                    f'id="pick-{pk}"><label for="pick-{pk}" class="visually-hidden">Seleccionar {name} para '
                    "reintentar</label>"
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
        actions = ""
        if job is not None:
            attempt = escape(display.attempt_label(kind=job.kind, number=job.kind_number))
            state += f' <span class="muted small nowrap">{attempt}</span>'
            if failed_job:
                message = job.failure_message
                label = display.failure_lead(job.failure_code, message)
                if len(message) > _FAILURE_MESSAGE_CHARS:  # Truncator walks every character: only when needed
                    message = Truncator(message).chars(_FAILURE_MESSAGE_CHARS)
                lead = f'<strong class="failure-label">{escape(label)}.</strong> ' if label else ""
                state += f'<span class="row-failure">{lead}{escape(message)}</span>'
                if blocked:
                    if job.failure_code != "certificate_missing":  # its label already says so
                        state += '<span class="row-failure row-blocked">Sin certificado: el cliente debe subir uno nuevo</span>'
                    asked_at = (certificates_asked or {}).get(pk)
                    if asked_at is not None:
                        at = asked_at.astimezone(local_zone)
                        day = "" if at.date() == timezone.localdate() else f" el {at.day} {months[at.month]}"
                        state += f'<span class="row-retry small">Nuevo certificado pedido{day} a las {at:%H:%M}</span>'
                    elif can_rerun and row.owner_email:
                        actions = (
                            f'<form method="post" action="{request_url_head}{pk}{request_url_tail}" class="inline">'
                            f'{csrf_input}<button class="button secondary small" type="submit">Pedir nuevo certificado'
                            f'<span class="visually-hidden"> a {name}</span></button></form>'
                        )
            elif job.waits_for_retry:
                at = job.run_after.astimezone(local_zone)  # type: ignore[union-attr]
                state += f'<span class="row-retry small">Reintento programado a las {at:%H:%M}</span>'
                if can_rerun and job.failure_code not in selectors.SII_MINIMUM_WAIT_CODES:
                    actions = (
                        f'<form method="post" action="{retry_url_head}{job.pk}{retry_url_tail}" class="inline">'
                        f'{csrf_input}<button class="button secondary small" type="submit">Reintentar ahora'
                        f'<span class="visually-hidden"> {name}</span></button></form>'
                    )
            if actions:
                state += f'<span class="row-actions-inline">{actions}</span>'
            link = (
                f'<a href="{job_url_head}{job.pk}{job_url_tail}">Ver detalle'
                f'<span class="visually-hidden"> de {name}</span></a>'
            )
        else:
            link = '<span class="muted small">Sin intentos</span>'
        if row.access_problem:
            problem = escape(ACCESS_PROBLEM_LABELS.get(row.access_problem, row.access_problem))
            state += f'<span class="row-failure access-problem"><strong>Acceso con problemas.</strong> {problem}</span>'
        if row.access_verified_at is not None:
            verified_at = row.access_verified_at.astimezone(local_zone)
            verified = (
                f'<time datetime="{verified_at.isoformat()}">{verified_at.day} {months[verified_at.month]} '
                f"{verified_at.year} {verified_at:%H:%M}</time>"
            )
        else:
            verified = '<span class="muted">—</span>'
        changed = row.stage_changed_at.astimezone(local_zone)
        blocked_attribute = " data-rerun-blocked" if blocked else ""
        parts.append(
            f'\n<tr id="company-{pk}" class="stage-{escape(row.stage)}"{blocked_attribute}{oob_attribute}>\n'
            f"  {select}\n"
            f'  <th scope="row" class="company" data-label="Empresa"><a class="company-link" href="{company_url_head}{pk}{company_url_tail}"><span class="company-name">{name}</span></a>'
            f"{contact}</th>\n"
            f'  <td class="nowrap" data-label="RUT"><span class="rut">{escape(rut_display(row.rut))}</span></td>\n'
            f'  <td class="state" data-label="Estado">{state}</td>\n'
            f'  <td class="changed" data-label="Último cambio"><time datetime="{changed.isoformat()}">'
            f"{changed.day} {months[changed.month]} {changed.year} {changed:%H:%M}</time></td>\n"
            f'  <td class="changed verified" data-label="Verificado">{verified}</td>\n'
            f'  <td class="row-link" data-label="">{link}</td>\n'
            "</tr>\n"
        )
    # In the live refresh each row travels inside a <template> (a bare <tr> can't be parsed
    # outside a table) and replaces the row with its id (hx-swap-oob).
    if oob:
        return mark_safe("".join(f"<template>{part}</template>\n" for part in parts))  # escaped above
    return mark_safe("".join(parts))  # escaped above


def _bulk_hint(rows: list[selectors.DashboardRow]) -> str:
    """What the bulk re-run bar says about this page's failed rows (staff.js says the same as rows
    are ticked): which can be retried, and how many cannot because their certificate is gone."""
    failed = [row for row in rows if row.stage == CompanyStage.FAILED and row.job and row.job.status == JobStatus.FAILED]
    blocked = sum(not row.job.certificate_kept for row in failed)  # type: ignore[union-attr]
    pickable = len(failed) - blocked
    if blocked == 1:
        blocked_text = "1 cliente con error no se puede reintentar: falta su certificado."
    else:
        blocked_text = f"{blocked} clientes con error no se pueden reintentar: falta su certificado."
    if pickable:
        hint = "Marque los clientes con error que quiere intentar de nuevo."
        return f"{hint} {blocked_text}" if blocked else hint
    return blocked_text if blocked else "No hay clientes con error en esta página."


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
    context = staff_context(
        membership,
        "dashboard",
        form=form,
        filters=filters,
        page=page,
        rows=rows,
        rows_html=_rows_html(rows, membership=membership, csrf_token=get_token(request),
                             certificates_asked=_certificates_asked(tenant, rows)),
        bulk_hint=_bulk_hint(rows),
        live_ids=selectors.active_company_ids(rows),
        poll_every=POLL_EVERY,
        stage_cards=_stage_cards(counts, filters.stage),
        total=sum(counts.values()),
        sort_headers=_sort_headers(filters.sort),
        filtered=bool(filters.stage or filters.query or filters.date_from or filters.date_to or filters.access),
        access_problems=selectors.access_problem_count(tenant=tenant),
        access_filter=filters.access,
    )
    context["filter_form_html"] = _filter_form_html(request, context)
    return render(request, "staff/dashboard.html", context)


def _certificates_asked(tenant: Tenant, rows: list[selectors.DashboardRow]) -> dict[int, dt.datetime]:
    """When the clients of `rows` were asked for a new certificate, within the period in which asking
    again is refused (`services.company_certificate_request`). One query for any page with rows, the
    same whatever the rows' stages (the dashboard's query count does not depend on its data)."""
    since = timezone.now() - dt.timedelta(hours=services.CERTIFICATE_REQUEST_EVERY_HOURS)
    return selectors.certificate_requests_since(tenant=tenant, company_ids=[row.pk for row in rows], since=since)


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
    context = staff_context(
        membership,
        "dashboard",
        rows_html=_rows_html(rows, membership=membership, csrf_token=get_token(request), oob=True),
        live_ids=selectors.active_company_ids(rows),
        poll_every=POLL_EVERY,
        stage_cards=_stage_cards(counts, current_stage),
        current_stage=current_stage,
        total=sum(counts.values()),
    )
    response = render(request, "staff/_live_rows.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- CSV export -----------------------------------------------------------------------------------

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
    "Tipo de error",
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
                    rut_display(company.rut),
                    company.legal_name,
                    company.owner_name,
                    company.owner_email,
                    company.get_stage_display(),
                    _local(company.stage_changed_at),
                    _local(company.created_at),
                    display.attempt_label(kind=job.kind, number=job.kind_number) if job else "",
                    display.job_status_badge(
                        kind=job.kind, status=job.status, outcome=job.outcome, retrying=job.retry_count > 0
                    ).label
                    if job
                    else "",
                    display.failure_label(job.failure_code) if job else "",
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


# --- Bulk re-run ----------------------------------------------------------------------------------


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def rerun_bulk(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Re-run the failed jobs ticked on the dashboard (owners and admins), with a report per row."""
    job_ids = request.POST.getlist("job")
    if not job_ids:
        messages.warning(request, "Seleccione al menos un cliente con error para reintentar.")
        return redirect(dashboard_url(membership, request.POST.get("volver", "")))
    try:
        outcomes = services.enrollment_jobs_rerun(tenant=membership.tenant, job_ids=job_ids, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
        return redirect(dashboard_url(membership, request.POST.get("volver", "")))
    context = staff_context(
        membership,
        "dashboard",
        outcomes=outcomes,
        done=sum(outcome.ok for outcome in outcomes),
        refused=sum(not outcome.ok for outcome in outcomes),
        back_url=dashboard_url(membership, request.POST.get("volver", "")),
    )
    return render(request, "staff/rerun_report.html", context)
