"""`manage.py demo` runs the web server as production does (debug off, WhiteNoise serving collected,
hashed static files) on plain http: every "not found" is the product's Spanish page, never Django's
English debug page, and the platform administration has a demo login."""
from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.portal.demo_run import DemoRun


def assert_spanish_not_found(response: httpx.Response) -> None:
    body = response.text
    assert response.status_code == 404, (response.request.url, response.status_code, body[:500])
    assert 'lang="es-CL"' in body and "No encontramos esta página" in body, (response.request.url, body[:2000])
    for technical in ("Page not found", "Not Found", "DEBUG = True", "URLconf"):
        assert technical not in body, (response.request.url, technical)


@pytest.mark.sandbox
def test_the_demo_shows_spanish_pages_serves_hashed_static_files_and_opens_the_platform(tmp_path: Path) -> None:
    demo = DemoRun(tmp_path)
    try:
        demo.wait_ready()
        with demo.http() as anonymous:
            assert_spanish_not_found(anonymous.get("/no-existe/"))
            login = anonymous.get("/ingresar/")
            # Plain http works: no redirect to https, no HSTS, cookies usable without TLS.
            assert login.status_code == 200
            assert "strict-transport-security" not in login.headers
            assert "secure" not in login.headers["set-cookie"].lower()
            stylesheet = re.search(r'href="(/static/css/autoriza\.[0-9a-f]{12}\.css)"', login.text)
            assert stylesheet, login.text[:2000]  # the manifest's hashed name: collected, not found on the fly
            css = anonymous.get(stylesheet.group(1))
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert "immutable" in css.headers["cache-control"]  # WhiteNoise's caching of hashed files

        with demo.http() as client:  # a company owner, signed up through the firm's link
            upload_path = demo.client_signup(client, "76.086.428-5")
            company_path = upload_path.removesuffix("certificado/")
            assert re.fullmatch(r"/empresa/\d+/", company_path), upload_path
            for path in ("/estudio/pyme-contadores/", "/estudio/pyme-contadores/configuracion/"):
                assert_spanish_not_found(client.get(path))

        with demo.http() as staff:  # "Personal", the firm's least-privileged role
            demo.login(staff, "personal@pymecontadores.cl", "autoriza-demo")
            for path in ("/estudio/pyme-contadores/configuracion/", "/estudio/pyme-contadores/equipo/",
                         "/empresa/", company_path, "/estudio/otra-firma/"):
                assert_spanish_not_found(staff.get(path))

        with demo.http() as platform:
            response = demo.post_form(platform, "/plataforma/login/",
                                      {"username": "plataforma@autoriza.demo", "password": "autoriza-demo",
                                       "next": "/plataforma/"})
            assert response.status_code == 302 and response.headers["location"] == "/plataforma/", response.text[-2000:]
            admin = platform.get("/plataforma/")
            assert admin.status_code == 200 and "Autoriza — administración de la plataforma" in admin.text

        demo.signal_group(signal.SIGTERM)
        code = demo.wait_exit()
        leftovers = demo.leftovers(settle=1.0)
    finally:
        demo.kill_leftovers()
    assert code == 0, demo.output[-4000:]
    assert leftovers == []
    output = demo.output
    assert re.search(r"plataforma@autoriza\.demo\s+superusuario", output)
    # Every test certificate file, each with what it is for.
    for name in ("demo.pfx", "admin2.pfx", "expired.pfx", "not_yet_valid.pfx", "unknown_ca.pfx", "serial_only.pfx",
                 "no_rut.pfx", "lowercase_k.pfx", "company_holder.pfx", "pem_cert_and_key.pem", "garbage.pfx"):
        assert re.search(rf"^    {re.escape(name)} +\S", output, re.MULTILINE), name
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()  # collected into the demo's own var/
