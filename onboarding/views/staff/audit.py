"""The audit log (owners): who did what and when."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from onboarding import access, selectors
from onboarding.domain import display
from onboarding.forms.staff import PAGE_SIZE, AuditFilterForm
from onboarding.models import AuditAction, Membership
from onboarding.views.staff.common import staff_context, staff_view


@staff_view(access_check=access.owner_membership_or_404)
def audit(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Who did what and when, newest first, filterable by action, 50 per page."""
    form = AuditFilterForm(request.GET)
    action = form.cleaned_data.get("accion", "") if form.is_valid() else ""
    page = Paginator(selectors.audit_filtered(tenant=membership.tenant, action=action), PAGE_SIZE).get_page(
        request.GET.get("pagina")
    )
    entries = list(page.object_list)
    # Finished-job entries name their job; its kind says whether it was a removal (one query a page).
    kinds = selectors.audit_job_kinds(tenant=membership.tenant, entries=entries)
    rows = []
    for entry in entries:
        details = dict(entry.details) if isinstance(entry.details, dict) else {}
        if entry.action == AuditAction.JOB_FINISHED and "kind" not in details and details.get("job") in kinds:
            details["kind"] = kinds[details["job"]]
        badge = display.audit_badge(entry.action, details)
        rows.append(
            {
                "entry": entry,
                "badge_label": badge.label,
                "badge_css": badge.css if entry.action == AuditAction.JOB_FINISHED else f"action-{entry.action}",
                "summary": display.audit_summary(entry.summary, details),
            }
        )
    return render(request, "staff/audit.html", staff_context(membership, "audit", form=form, page=page, rows=rows))
