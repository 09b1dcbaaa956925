"""The firm's dashboard: counts, filters, RUT search in any spelling, sorting, pagination, the live
refresh of queued/running rows, the CSV export (and its formula-injection escaping), and a query
count that does not grow with the tenant (10 vs 10,000 client companies)."""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import time
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from onboarding import services
from onboarding.models import ClientCompany, CompanyStage, EnrollmentJob, JobStatus
from onboarding.views.staff import dashboard as staff_views
from onboarding.views.staff.dashboard import csv_safe
from tests.onboarding.staff_factories import certificate_make, company_make, invitation_make, job_make

pytestmark = pytest.mark.django_db


def dashboard(client, **params):  # type: ignore[no-untyped-def]
    return client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"}), params)


def row_names(response) -> list[str]:  # type: ignore[no-untyped-def]
    """The legal names of the rows, in page order."""
    return [html.unescape(name) for name in re.findall(r'<span class="company-name">([^<]+)</span>', response.content.decode())]


def rut_for(body: int) -> str:
    """A valid RUT for this body (módulo 11)."""
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    dv = 11 - total % 11
    return f"{body}-{'0' if dv == 11 else 'K' if dv == 10 else dv}"


@pytest.fixture
def firm(cast):  # type: ignore[no-untyped-def]
    """Tenant A with clients in every stage; `company_a` has two attempts (the last one failed)."""
    job_make(cast.company_a, status=JobStatus.FAILED, failure_code="certificate_rejected", failure_message="Primer intento.")
    job_make(cast.company_a, status=JobStatus.FAILED, failure_code="sii_unavailable", failure_message="El SII no respondió.")
    companies = {
        "invited": company_make(cast.tenant_a, "96874030-K", "Agrícola Invitada Ltda.", stage=CompanyStage.INVITED),
        "waiting": company_make(cast.tenant_a, "60803000-K", "Bodega Espera SpA"),
        "queued": company_make(cast.tenant_a, "76369187-K", "Constructora En Cola SpA"),
        "running": company_make(cast.tenant_a, "7880442-4", "Distribuidora Corriendo EIRL"),
        "ok": company_make(cast.tenant_a, "11111111-1", "Estudio Autorizado Ltda."),
        "k": company_make(cast.tenant_a, "15000005-K", "Kiosko Con K Ltda.", owner_name="Pedro Kunstmann"),
    }
    job_make(companies["queued"], status=JobStatus.QUEUED)
    job_make(companies["running"], status=JobStatus.RUNNING)
    job_make(companies["ok"], status=JobStatus.SUCCEEDED)
    companies["failed"] = cast.company_a
    return companies


def test_counts_by_stage_and_total(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    response = dashboard(client)
    assert response.status_code == 200
    counts = response.context["stage_cards"]
    assert {card["stage"]: card["count"] for card in counts} == {
        "invited": 1, "waiting_certificate": 2, "queued": 1, "running": 1, "authorized": 1, "failed": 1, "revoked": 0,
    }
    assert response.context["total"] == 7
    body = response.content.decode()
    assert "Esperando certificado" in body and "Con error" in body
    assert "Ferretería B" not in body  # tenant B's company


def test_latest_job_and_its_failure_shown_per_row(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    body = html.unescape(dashboard(client, estado="failed").content.decode())
    assert "Autorización, intento 2" in body and "El SII no respondió." in body
    # The failure by its Spanish name; the machine code stays off the dashboard (the job page has it).
    assert "SII no disponible." in body and "sii_unavailable" not in body
    assert "Primer intento." not in body


def test_filter_by_stage(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert row_names(dashboard(client, estado="running")) == ["Distribuidora Corriendo EIRL"]
    assert row_names(dashboard(client, estado="waiting_certificate", orden="nombre")) == ["Bodega Espera SpA", "Kiosko Con K Ltda."]
    # An unknown stage is a form error, not a 500, and shows everything.
    response = dashboard(client, estado="hackeado")
    assert response.status_code == 200 and len(row_names(response)) == 7


@pytest.mark.parametrize(
    "query",
    ["76.086.428-5", "76086428-5", "760864285", "76086428", "76.086.428", " 76 086 428 - 5 ", "086428"],
)
def test_search_by_rut_in_any_spelling(client, cast, firm, query) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert row_names(dashboard(client, q=query)) == ["Comercial Demo SpA"]


@pytest.mark.parametrize("query", ["15.000.005-k", "15000005-K", "15000005k", "15.000.005K"])
def test_search_by_rut_with_k_in_any_case(client, cast, firm, query) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert row_names(dashboard(client, q=query)) == ["Kiosko Con K Ltda."]


def test_search_by_name_and_contact(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert row_names(dashboard(client, q="bodega")) == ["Bodega Espera SpA"]
    assert row_names(dashboard(client, q="KUNSTMANN")) == ["Kiosko Con K Ltda."]
    assert row_names(dashboard(client, q="nada parecido")) == []
    assert "Ningún cliente coincide" in dashboard(client, q="nada parecido").content.decode()


@pytest.mark.parametrize("query", ["Ñandú", "ñandú", "ÑANDÚ", "nandu", "COMPAÑÍA", "compania", "Ñuñoa", "nunoa"])
def test_search_ignores_case_and_spanish_accents(client, cast, firm, query) -> None:  # type: ignore[no-untyped-def]
    """SQLite's LIKE folds only ASCII: "ÑANDÚ" did not find "Compañía Ñandú" on the embedded setup."""
    company_make(cast.tenant_a, "76555555-8", "Compañía Ñandú Ltda.", owner_name="José Ñuñoa Pérez")
    client.force_login(cast.staff_a)
    assert row_names(dashboard(client, q=query)) == ["Compañía Ñandú Ltda."]


def test_sorting_by_name_ignores_case_and_accents(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    company_make(cast.tenant_a, "76555555-8", "EMPRESA MAYÚSCULA SPA")
    company_make(cast.tenant_a, "76444444-2", "Ángulo Recto Ltda.")
    company_make(cast.tenant_a, "76333333-7", "aguas del sur spa")
    client.force_login(cast.staff_a)
    names = row_names(dashboard(client, orden="nombre"))
    # "Ángulo" among the A's (not after "Z"), "EMPRESA" after "Distribuidora" and before "Estudio".
    assert names.index("aguas del sur spa") < names.index("Ángulo Recto Ltda.") < names.index("Bodega Espera SpA")
    assert names.index("Distribuidora Corriendo EIRL") < names.index("EMPRESA MAYÚSCULA SPA") < names.index(
        "Estudio Autorizado Ltda."
    )
    assert row_names(dashboard(client, orden="-nombre")) == names[::-1]


def test_date_range_on_created_and_on_stage_changed(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    today = timezone.localdate()
    long_ago = timezone.now() - dt.timedelta(days=40)
    ClientCompany.objects.filter(pk=firm["waiting"].pk).update(created_at=long_ago, stage_changed_at=long_ago)
    ClientCompany.objects.filter(pk=firm["ok"].pk).update(created_at=long_ago)  # changed today
    client.force_login(cast.staff_a)
    old = (today - dt.timedelta(days=40)).isoformat()
    assert row_names(dashboard(client, fecha="creado", desde=old, hasta=old, orden="nombre")) == [
        "Bodega Espera SpA", "Estudio Autorizado Ltda.",
    ]
    assert row_names(dashboard(client, fecha="cambio", hasta=old)) == ["Bodega Espera SpA"]
    assert "Bodega Espera SpA" not in row_names(dashboard(client, fecha="cambio", desde=today.isoformat()))
    # desde after hasta: reported, not a 500.
    response = dashboard(client, desde=today.isoformat(), hasta=old)
    assert response.status_code == 200 and "posterior" in html.unescape(response.content.decode())


@pytest.mark.parametrize(
    ("params", "field"),
    [({"hasta": "9999-12-31"}, "hasta"), ({"desde": "0001-01-01"}, "desde"), ({"desde": "1999-12-31"}, "desde"),
     ({"hasta": "2200-01-01"}, "hasta")],
)
def test_dates_outside_the_filterable_years_are_reported_not_a_500(client, cast, firm, params, field) -> None:  # type: ignore[no-untyped-def]
    """hasta=9999-12-31 used to overflow the day-after arithmetic (a 500 on the page and the export)."""
    client.force_login(cast.staff_a)
    response = dashboard(client, **params)
    assert response.status_code == 200
    assert response.context["form"].errors[field] == ["Ingrese una fecha entre el 01-01-2000 y el 31-12-2199."]
    # The bad date is ignored: every client is still listed.
    assert len(row_names(response)) == len(row_names(dashboard(client)))
    export = client.get(reverse("staff:dashboard_export", kwargs={"tenant_slug": "pyme"}), params)
    assert export.status_code == 200 and b"".join(export.streaming_content).count(b"\n") > 1


def test_sorting_by_each_column(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    names = row_names(dashboard(client, orden="nombre"))
    assert names == sorted(names, key=str.lower)
    assert row_names(dashboard(client, orden="-nombre")) == names[::-1]
    # RUTs sort numerically (7.880.442 before 11.111.111 before 60.803.000), not as text.
    ruts = [c.rut for c in dashboard(client, orden="rut").context["page"].object_list]
    assert ruts == sorted(ruts, key=lambda r: int(r.split("-")[0]))
    stages = [c.stage for c in dashboard(client, orden="estado").context["page"].object_list]
    assert stages.index("invited") < stages.index("queued") < stages.index("failed") < stages.index("authorized")
    ClientCompany.objects.filter(pk=firm["invited"].pk).update(stage_changed_at=timezone.now() + dt.timedelta(minutes=5))
    assert row_names(dashboard(client))[0] == "Agrícola Invitada Ltda."  # default: last change first
    assert row_names(dashboard(client, orden="cambio"))[-1] == "Agrícola Invitada Ltda."
    # The header says how the table is sorted, for screen readers too.
    assert 'aria-sort="ascending"' in dashboard(client, orden="nombre").content.decode()
    # A made-up sort falls back to the default.
    assert dashboard(client, orden="password").status_code == 200


def test_pagination_keeps_filters_and_never_overlaps(client, cast) -> None:  # type: ignore[no-untyped-def]
    ClientCompany.objects.bulk_create(
        ClientCompany(tenant=cast.tenant_a, rut=rut_for(20_000_000 + i), legal_name=f"Pyme {i:03d}", stage=CompanyStage.INVITED)
        for i in range(120)
    )
    client.force_login(cast.staff_a)
    pages = [row_names(dashboard(client, estado="invited", orden="nombre", pagina=n)) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [50, 50, 20]
    flat = [name for page in pages for name in page]
    assert flat == [f"Pyme {i:03d}" for i in range(120)]
    body = dashboard(client, estado="invited", orden="nombre", pagina=2).content.decode()
    assert "Página 2 de 3" in body
    assert "?estado=invited&amp;orden=nombre&amp;pagina=3" in body  # next link keeps the filters
    assert row_names(dashboard(client, estado="invited", orden="nombre", pagina=99)) == pages[2]  # past the end
    assert row_names(dashboard(client, estado="invited", orden="nombre", pagina="x")) == pages[0]


@pytest.mark.parametrize("ids", ["99999999999999999999999", "²", ",,x,-3", "", "１２"])
def test_live_refresh_ignores_ids_that_are_not_row_ids(client, cast, firm, ids) -> None:  # type: ignore[no-untyped-def]
    """A 23-digit id overflowed SQLite's integers and "²" passed str.isdigit(): both were 500s."""
    client.force_login(cast.staff_a)
    response = client.get(reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"}), {"ids": ids})
    assert response.status_code == 200 and 'id="company-' not in response.content.decode()


def test_live_refresh_renders_a_repeated_id_once(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    pk = firm["running"].pk
    partial = client.get(reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"}), {"ids": f"{pk},{pk},{pk}"})
    assert partial.content.decode().count(f'<tr id="company-{pk}"') == 1


def test_live_refresh_polls_only_while_rows_are_active(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    body = dashboard(client).content.decode()
    ids = sorted([firm["queued"].pk, firm["running"].pk])
    poller = re.search(r'<div id="live-poller"[^>]*>', body).group(0)
    assert 'hx-trigger="every 3s"' in poller
    assert ",".join(str(i) for i in ids) in poller or ",".join(str(i) for i in ids[::-1]) in poller

    rows_url = reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"})
    response = client.get(rows_url, {"ids": f"{firm['queued'].pk},{firm['running'].pk}"}, HTTP_HX_REQUEST="true")
    partial = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert 'hx-trigger="every 3s"' in partial
    assert partial.count('hx-swap-oob="true"') == 3  # two rows + the counts
    assert f'<tr id="company-{firm["running"].pk}"' in partial

    # The running job finishes: the refreshed row says so, and the new poller stops polling.
    EnrollmentJob.objects.filter(company=firm["running"]).update(status=JobStatus.SUCCEEDED)
    EnrollmentJob.objects.filter(company=firm["queued"]).update(status=JobStatus.FAILED, failure_message="Cayó.")
    ClientCompany.objects.filter(pk=firm["running"].pk).update(stage=CompanyStage.AUTHORIZED)
    ClientCompany.objects.filter(pk=firm["queued"].pk).update(stage=CompanyStage.FAILED)
    partial = client.get(rows_url, {"ids": f"{firm['queued'].pk},{firm['running'].pk}"}).content.decode()
    assert "hx-trigger" not in partial
    assert "Autorizado" in partial and "Cayó." in partial

    # A page without active rows has no polling at all.
    assert "hx-trigger" not in dashboard(client, estado="authorized").content.decode()


def test_rerun_checkboxes_only_for_roles_that_may_rerun(client, cast, firm, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    latest = EnrollmentJob.objects.filter(company=firm["failed"]).order_by("-attempt").first()
    client.force_login(cast.admin_a)
    # A failed attempt whose certificate is gone cannot be re-run: no checkbox (the bulk re-run refused it).
    assert 'class="rerun-pick"' not in dashboard(client).content.decode()
    EnrollmentJob.objects.filter(pk=latest.pk).update(certificate=certificate_make(firm["failed"], certificate_bundle))
    client.force_login(cast.staff_a)
    body = dashboard(client).content.decode()
    assert "rerun-pick" not in body and "Reintentar seleccionados" not in body
    client.force_login(cast.admin_a)
    body = dashboard(client).content.decode()
    assert body.count('class="rerun-pick"') == 1 and f'value="{latest.pk}"' in body
    assert "Reintentar seleccionados" in body


# --- CSV export ------------------------------------------------------------------------------------


def export(client, **params) -> list[list[str]]:  # type: ignore[no-untyped-def]
    response = client.get(reverse("staff:dashboard_export", kwargs={"tenant_slug": "pyme"}), params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="clientes-pyme-')
    assert "no-store" in response["Cache-Control"]
    raw = b"".join(response.streaming_content).decode("utf-8")
    assert raw.startswith("\ufeff")
    return list(csv.reader(io.StringIO(raw.lstrip("\ufeff")), delimiter=";"))


def test_export_has_spanish_headers_and_exactly_the_filtered_rows(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    rows = export(client)
    assert rows[0] == [
        "RUT", "Razón social", "Contacto", "Correo", "Estado", "Último cambio", "Creada", "Intento",
        "Estado del intento", "Tipo de error", "Mensaje de error",
    ]
    assert len(rows) == 1 + 7
    failed = export(client, estado="failed")
    assert failed[1][:5] == ["76.086.428-5", "Comercial Demo SpA", "María Soto", "cliente@empresa.cl", "Con error"]
    assert failed[1][7:] == ["Autorización, intento 2", "Con error", "SII no disponible", "El SII no respondió."]
    assert [r[1] for r in export(client, q="15.000.005-k")[1:]] == ["Kiosko Con K Ltda."]
    assert [r[1] for r in export(client, orden="-nombre")[1:]] == sorted([r[1] for r in rows[1:]], key=str.lower, reverse=True)


def test_export_ignores_pagination_and_streams_every_page(client, cast) -> None:  # type: ignore[no-untyped-def]
    ClientCompany.objects.bulk_create(
        ClientCompany(tenant=cast.tenant_a, rut=rut_for(30_000_000 + i), legal_name=f"Masiva {i}") for i in range(130)
    )
    client.force_login(cast.staff_a)
    assert len(export(client, q="Masiva", pagina=2)) == 1 + 130


def test_export_neutralizes_spreadsheet_formulas(client, cast) -> None:  # type: ignore[no-untyped-def]
    company_make(
        cast.tenant_a, "96874030-K", '=HYPERLINK("http://malo.cl","clic")', owner_name="+56 9 1234 5678",
        owner_email="x@x.cl",
    )
    company_make(cast.tenant_a, "60803000-K", "-2+3", owner_name="@SUM(A1:A9)")
    client.force_login(cast.staff_a)
    rows = export(client, orden="rut")
    cells = [cell for row in rows[1:] for cell in row]
    assert "'=HYPERLINK(\"http://malo.cl\",\"clic\")" in cells
    assert "'+56 9 1234 5678" in cells and "'-2+3" in cells and "'@SUM(A1:A9)" in cells
    assert not any(cell[:1] in ("=", "+", "-", "@") for cell in cells)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("ok", "ok"), (None, ""), (3, "3"), ("a=b", "a=b")],
)
def test_csv_safe(value, expected) -> None:  # type: ignore[no-untyped-def]
    assert csv_safe(value) == expected


# --- Query count: the same for 10 and 10,000 companies ---------------------------------------------


def populate(tenant, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` companies in every stage; a third have jobs (some with two attempts), bulk-inserted."""
    representative = tenant.representatives.get()
    stages = [s for s, _ in CompanyStage.choices]
    now = timezone.now()
    companies = ClientCompany.objects.bulk_create(
        ClientCompany(
            tenant=tenant,
            rut=rut_for(40_000_000 + i),
            legal_name=f"Empresa {i:05d} SpA",
            owner_name=f"Contacto {i}",
            owner_email=f"c{i}@empresa.cl",
            stage=stages[i % len(stages)],
            stage_changed_at=now - dt.timedelta(minutes=i),
            created_at=now - dt.timedelta(minutes=2 * i),
        )
        for i in range(count)
    )
    status_for = {
        "queued": JobStatus.QUEUED, "running": JobStatus.RUNNING, "authorized": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED,
    }
    jobs = []
    for i, company in enumerate(companies):
        if company.stage not in status_for:
            continue
        if company.stage == "failed" and i % 2:
            jobs.append(
                EnrollmentJob(
                    id=uuid.uuid4(), tenant=tenant, company=company, representative=representative,
                    user_rut=representative.rut, user_name=representative.name, status=JobStatus.FAILED,
                    attempt=1, failure_code="old", failure_message="Intento anterior.",
                )
            )
        jobs.append(
            EnrollmentJob(
                id=uuid.uuid4(), tenant=tenant, company=company, representative=representative,
                user_rut=representative.rut, user_name=representative.name, status=status_for[company.stage],
                attempt=2 if company.stage == "failed" and i % 2 else 1,
                failure_code="sii_unavailable" if company.stage == "failed" else "",
                failure_message="El SII no respondió." if company.stage == "failed" else "",
            )
        )
    EnrollmentJob.objects.bulk_create(jobs, batch_size=2000)


PAGES = [
    {},
    {"pagina": "2"},
    {"orden": "nombre", "pagina": "3"},
    {"orden": "-rut"},
    {"orden": "estado", "pagina": "4"},
    {"estado": "failed", "orden": "-cambio"},
    {"q": "empresa 000", "fecha": "creado"},
]


def own_queries(queries: CaptureQueriesContext) -> list[str]:
    """The queries of the dashboard itself: those on companies and jobs (not session, user, membership)."""
    return [q["sql"] for q in queries if "onboarding_clientcompany" in q["sql"] or "onboarding_enrollmentjob" in q["sql"]]


def measure(client, params: dict[str, str]) -> tuple[int, float, int, int]:  # type: ignore[no-untyped-def]
    """(queries, seconds, rows, the dashboard's own queries) of one dashboard page."""
    start = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        response = dashboard(client, **params)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200
    return len(queries), elapsed, len(response.context["rows"]), len(own_queries(queries))


def test_dashboard_queries_do_not_grow_with_10000_companies_and_export_streams_them(client, cast, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    dashboard(client)  # warm caches (content types, templates)
    populate(cast.tenant_a, 10)
    dashboard(client)  # the counts by stage changed: counted once, then cached
    small = {repr(p): measure(client, p) for p in PAGES}

    ClientCompany.objects.filter(tenant=cast.tenant_a).exclude(pk=cast.company_a.pk).delete()
    start = time.perf_counter()
    populate(cast.tenant_a, 10_000)
    print(f"\n  inserted 10,000 companies (+ jobs) in {time.perf_counter() - start:.2f} s")
    assert ClientCompany.objects.filter(tenant=cast.tenant_a).count() == 10_001
    with CaptureQueriesContext(connection) as queries:
        dashboard(client)
    # After a change: the latest change, the counts by stage (GROUP BY), the access problems count,
    # the page, its latest jobs.
    assert len(own_queries(queries)) == 5, own_queries(queries)
    large = {repr(p): measure(client, p) for p in PAGES}

    for key in small:
        (q_small, t_small, _, _), (q_large, t_large, n_large, own) = small[key], large[key]
        print(f"  {key:45} queries 10: {q_small}  10,000: {q_large} (own {own})   time 10: {t_small * 1000:.0f} ms  10,000: {t_large * 1000:.0f} ms  rows: {n_large}")
        assert q_large == q_small, f"{key}: {q_small} queries with 10 companies, {q_large} with 10,000"
        # The latest stage change (index lookup; the counts come from the cache), the count of clients
        # with access problems, the page and its latest jobs; a search or a date range also needs a
        # COUNT (the counts by stage can't tell).
        searched = "q" in key or "desde" in key or "hasta" in key
        assert own == (5 if searched else 4), f"{key}: {own} queries on companies and jobs"
    assert large[repr({})][2] == 50
    with django_assert_max_num_queries(small[repr({})][0]):
        dashboard(client, pagina="100")

    # The live refresh of a page's active rows costs the same too.
    active = list(ClientCompany.objects.filter(tenant=cast.tenant_a, stage__in=["queued", "running"]).values_list("pk", flat=True)[:50])
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"}), {"ids": ",".join(map(str, active))})
    print(f"  live refresh of {len(active)} rows: {len(queries)} queries")
    assert len(queries) <= small[repr({})][0]

    # The CSV export of all 10,001 streams in chunks: 2 queries per 2,000 rows, memory flat.
    start = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("staff:dashboard_export", kwargs={"tenant_slug": "pyme"}))
        lines = b"".join(response.streaming_content).decode("utf-8").splitlines()
    print(f"  CSV of 10,001 companies: {len(queries)} queries, {time.perf_counter() - start:.2f} s, {len(lines)} lines")
    assert len(lines) == 1 + 10_001
    assert len(queries) <= 4 + 2 * 6  # session, user, membership + (companies, latest jobs) × 6 chunks


# --- Counts by stage from the cache; rows built without a template per row -------------------------


def test_stage_counts_come_from_the_cache_until_a_company_changes_stage(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    dashboard(client)
    with CaptureQueriesContext(connection) as queries:
        response = dashboard(client)
    assert not any("GROUP BY" in sql for sql in own_queries(queries))  # served from the cache
    assert response.context["total"] == 7 and response.context["page"].paginator.count == 7

    # A worker claims the queued job (what moves a company to RUNNING): the next view counts again.
    services.enrollment_job_claim(job_id=str(EnrollmentJob.objects.get(company=firm["queued"]).pk), worker="prueba")
    with CaptureQueriesContext(connection) as queries:
        response = dashboard(client)
    assert any("GROUP BY" in sql for sql in own_queries(queries))
    counts = {card["stage"]: card["count"] for card in response.context["stage_cards"]}
    assert counts["queued"] == 0 and counts["running"] == 2
    assert len(row_names(dashboard(client, estado="running"))) == 2

    # A new client (an invitation) is counted at once too, in the total and in the pagination.
    invitation_make(cast.tenant_a, "12531909-2", "Nueva Invitada SpA")
    response = dashboard(client)
    assert response.context["total"] == 8 and response.context["page"].paginator.count == 8
    assert dashboard(client, estado="invited").context["page"].paginator.count == 2


def test_cached_stage_counts_never_mix_tenants(client, cast, firm) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert dashboard(client).context["total"] == 7
    client.force_login(cast.staff_b)
    response = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "otro"}))
    assert response.context["total"] == 1 and response.context["page"].paginator.count == 1
    assert row_names(response) == ["Ferretería B Ltda."]


def test_rows_escape_truncate_and_format_like_the_templates_did(client, cast, firm, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    """The rows are built in Python (onboarding.views.staff.dashboard._rows_html): everything from the database
    is escaped, long failure messages are cut at 160 characters, dates are local (Santiago) and Spanish."""
    hostile = "<script>alert('x')</script> & \"Hijos\""
    company = company_make(cast.tenant_a, rut_for(33_333_333), hostile, owner_name="O'Brien <b>", stage=CompanyStage.FAILED)
    job = job_make(company, status=JobStatus.FAILED, failure_code="código<1>", failure_message="<b>falló</b> " + "x" * 200,
                   certificate=certificate_make(company, certificate_bundle))
    when = dt.datetime(2031, 1, 1, 12, 5, 9, tzinfo=dt.UTC)  # 09:05 in Santiago (UTC-3 in summer)
    ClientCompany.objects.filter(pk=company.pk).update(stage_changed_at=when)
    client.force_login(cast.admin_a)
    body = dashboard(client, estado="failed").content.decode()
    row = re.search(rf'<tr id="company-{company.pk}" class="stage-failed">.*?</tr>', body, re.DOTALL).group(0)

    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Hijos&quot;"
    assert "<script>" not in row and "<b>" not in row
    assert f'<span class="company-name">{escaped}</span>' in row
    assert f"Seleccionar {escaped} para reintentar" in row  # the checkbox's label (admins)
    assert f'<span class="visually-hidden"> de {escaped}</span>' in row  # the detail link's text
    assert '<span class="muted small contact">O&#x27;Brien &lt;b&gt;</span>' in row
    assert f'value="{job.pk}"' in row and f'href="/estudio/pyme/trabajos/{job.pk}/"' in row
    failure = re.search(r'<span class="row-failure"><strong class="failure-label">Error no clasificado.</strong> (.*?)</span>', row).group(1)
    assert failure.startswith("&lt;b&gt;falló&lt;/b&gt; xxx") and failure.endswith("x…")
    assert len(html.unescape(failure)) == 160
    assert "código" not in row  # an unknown failure code is not shown raw
    assert '<time datetime="2031-01-01T09:05:09-03:00">1 Ene 2031 09:05</time>' in row
    assert '<td class="nowrap" data-label="RUT"><span class="rut">33.333.333-3</span></td>' in row
    assert '<span class="badge failed">Con error</span> <span class="muted small nowrap">Autorización, intento 1</span>' in row

    # A short message is shown whole, a company without attempts says so, staff get no checkbox.
    client.force_login(cast.staff_a)
    body = dashboard(client).content.decode()
    assert "El SII no respondió." in body and "rerun-pick" not in body and '<td class="select">' not in body
    waiting = re.search(rf'<tr id="company-{firm["waiting"].pk}".*?</tr>', body, re.DOTALL).group(0)
    assert '<span class="muted small">Sin intentos</span>' in waiting and 'nowrap">intento' not in waiting


def test_filter_form_is_rendered_per_filters_and_remembered_within_bounds(client, cast, firm, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A small bound: what is proven is that it holds, and filling the production one (256) takes
    # 261 dashboard renders.
    monkeypatch.setattr(staff_views, "_FILTER_FORMS_MAX", 16)
    client.force_login(cast.staff_a)
    assert '<option value="failed" selected>' in dashboard(client, estado="failed").content.decode()
    assert '<option value="failed" selected>' not in dashboard(client, estado="running").content.decode()
    assert '<option value="failed" selected>' in dashboard(client, estado="failed", pagina="2").content.decode()
    invalid = html.unescape(dashboard(client, estado="hackeado").content.decode())
    assert 'aria-invalid="true"' in invalid and "hackeado no es una de las opciones" in invalid
    assert 'value="bodega"' in dashboard(client, q="bodega").content.decode()
    # Only short keys are remembered, and never more than the bound: the values come from the URL.
    long_query = "a" * 2000
    assert f'value="{long_query}"' in dashboard(client, q=long_query).content.decode()
    assert not any(long_query in key[-1] for key in staff_views._FILTER_FORMS)
    for n in range(staff_views._FILTER_FORMS_MAX + 5):
        dashboard(client, q=f"busqueda {n}")
    assert len(staff_views._FILTER_FORMS) <= staff_views._FILTER_FORMS_MAX
