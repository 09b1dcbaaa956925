"""The job page for the firm: timeline with durations, the SII's result in its own layout, the
failure (with the technical detail), every attempt of the client, and the evidence served decrypted
only to members, never cached, never as live HTML."""
from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from onboarding.models import ArtifactKind, JobStatus
from tests.onboarding.staff_factories import artifact_make, job_make

pytestmark = pytest.mark.django_db

RESULT = {
    "company_name": "COMERCIAL DEMO SPA",
    "company_rut": "76086428-5",
    "user_rut": "13322924-8",
    "user_name": "ALEX BRITO MARDONES",
    "admin": True,
    "sign": False,
    "registry": True,
    "authorized_by": "13322924-8",
}


def text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())).split())


def detail(client, job):  # type: ignore[no-untyped-def]
    return client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk}))


def test_failed_job_shows_failure_detail_timeline_and_attempts(client, cast) -> None:  # type: ignore[no-untyped-def]
    first = job_make(cast.company_a, status=JobStatus.FAILED, failure_code="certificate_rejected", failure_message="Primero.")
    second = job_make(cast.company_a, status=JobStatus.FAILED, rerun_of=first, failure_message="El SII no está disponible.")
    client.force_login(cast.staff_a)
    response = detail(client, second)
    body = text(response)
    assert response.status_code == 200
    assert "Comercial Demo SpA" in body and "76.086.428-5" in body
    assert "El SII no está disponible." in body and "sii_unavailable" in body
    assert "HTTP 500 on eu_enrola_usuarios" in body  # failure_detail, for the firm only
    # Timeline: one line per step (started → done) with its duration, and the gap since the previous line.
    assert "En cola" in body
    assert "Identificarse con el certificado digital Listo" in body and "duró 2,4 s" in body
    assert "+5,0 s desde el paso anterior" in body and "+33 s desde el paso anterior" in body
    assert body.count("Identificarse con el certificado digital") == 1
    # Every attempt of the client, linked (the current one marked).
    assert reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": first.pk}) in response.content.decode()
    assert "Autorización, intento 2 (este)" in body and "reintento de Autorización, intento 1" in body
    assert "hx-trigger" not in response.content.decode()  # finished: no polling


def test_succeeded_job_shows_the_sii_result_in_its_layout(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.SUCCEEDED, result=RESULT)
    client.force_login(cast.staff_a)
    body = text(detail(client, job))
    assert "INGRESO DE USUARIOS AUTORIZADOS" in body
    assert "Se ha grabado satisfactoriamente el nuevo usuario en la empresa COMERCIAL DEMO SPA , Rut 76.086.428-5" in body
    assert "Rut Usuario 13.322.924-8" in body and "Nombre Usuario ALEX BRITO MARDONES" in body
    assert "Usuario-Administrador SI" in body and "Firmar Documentos NO" in body and "Registro SI" in body
    assert "Autorizado por 13.322.924-8" in body


def test_running_job_polls_and_the_poll_reloads_the_page_when_it_ends(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.RUNNING)
    client.force_login(cast.staff_a)
    page = detail(client, job).content.decode()
    assert re.search(r'<section id="job-live"[^>]*hx-trigger="every 3s"', page)
    partial = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk}), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode() and 'id="job-live"' in partial.content.decode()
    type(job).objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, result=RESULT)
    done = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk}), HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true"


def artifact_url(job, artifact, **query: str) -> str:  # type: ignore[no-untyped-def]
    url = reverse("staff:job_artifact", kwargs={"tenant_slug": "pyme", "job_id": job.pk, "artifact_id": artifact.pk})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_screenshot_is_served_decrypted_as_png_never_cached(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.FAILED)
    shot = artifact_make(job, kind=ArtifactKind.SCREENSHOT, content=b"\x89PNG\r\n\x1a\nreal bytes")
    client.force_login(cast.staff_a)
    page = detail(client, job).content.decode()
    assert f'<img src="{artifact_url(job, shot)}"' in page
    response = client.get(artifact_url(job, shot))
    assert response.status_code == 200
    assert response.content == b"\x89PNG\r\n\x1a\nreal bytes"
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_sii_page_html_is_text_never_live_html(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.FAILED)
    page_html = artifact_make(job, kind=ArtifactKind.PAGE_HTML)
    client.force_login(cast.staff_a)
    assert "Ver código" in text(detail(client, job))
    response = client.get(artifact_url(job, page_html))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"<script>alert('xss')</script>" in response.content  # as text, untouched
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert response["Content-Disposition"].startswith("inline;")
    download = client.get(artifact_url(job, page_html, descargar="1"))
    assert download["Content-Disposition"].startswith("attachment;") and download["Content-Type"].startswith("text/plain")


def test_artifacts_are_404_for_other_tenants_and_clients(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.FAILED)
    shot = artifact_make(job)
    for user in (cast.staff_b, cast.client_a):
        client.force_login(user)
        assert client.get(artifact_url(job, shot)).status_code == 404
    client.logout()
    assert client.get(artifact_url(job, shot)).status_code == 302
