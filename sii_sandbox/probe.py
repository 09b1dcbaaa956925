"""A plain-HTTP client (httpx, no browser) that walks the sandbox pages like a minimal browser.

It is what the sandbox's own tests use and what a benchmark can use as the plain-HTTP lower bound.
It understands just enough of the pages to get through them: redirects, the ``document.cookie``
lines and ``location.replace`` of the login page, the auto-submitted ``referencia`` form (the
confirm() dialog counts as accepted), forms (hidden/text/checkbox/radio/submit) and
``javascript:enviar('…')`` links. It never hard-codes the intermediate CGI names: it follows forms,
field names and button labels, as the real bot must.

    with PlainClient.from_pfx(env["SII_CA_BUNDLE"], env["SANDBOX_DEMO_PFX"], "demo1234") as c:
        page = enroll(c, env["SII_ENROLL_URL"], "76086428-5", "11111111-1", sign=True, registry=True)
        assert "Se ha grabado satisfactoriamente" in page.visible_text
"""

from __future__ import annotations

import html
import re
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Self

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from .rut import split


@dataclass
class Input:
    """One form control: ``type`` is lower-case (hidden, text, checkbox, radio, submit, password...)."""

    name: str
    type: str
    value: str
    checked: bool


@dataclass
class Form:
    """A parsed FORM; ``action`` is absolute."""

    name: str
    action: str
    method: str
    inputs: list[Input] = field(default_factory=list)

    def field_names(self) -> set[str]:
        """Names of all controls in the form."""
        return {i.name for i in self.inputs if i.name}

    def buttons(self) -> list[str]:
        """Values (labels) of the submit buttons."""
        return [i.value for i in self.inputs if i.type == "submit"]


@dataclass
class Page:
    """A fetched page: bytes, ISO-8859-1 text, visible text (entities decoded), forms and links."""

    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    forms: list[Form]
    links: list[tuple[str, str]]  # (visible text, absolute href or "javascript:...")
    scripts: str

    @property
    def text(self) -> str:
        """The markup decoded as ISO-8859-1 (what SII serves without declaring it)."""
        return self.content.decode("iso-8859-1")

    @property
    def visible_text(self) -> str:
        """Text without tags, entities decoded and whitespace collapsed."""
        no_script = re.sub(r"(?is)<script.*?</script>", " ", self.text)
        plain = re.sub(r"(?s)<[^>]*>", " ", no_script)
        return re.sub(r"\s+", " ", html.unescape(plain)).strip()

    @property
    def alert(self) -> str | None:
        """The first ``alert("…")`` text executed at load (outside functions), if any."""
        m = re.search(r'^alert\("((?:[^"\\]|\\.)*)"\);', self.scripts, re.MULTILINE)
        return m.group(1).encode("latin-1").decode("unicode_escape") if m else None

    def form(self, name: str | None = None, *, with_field: str | None = None,
             with_button: str | None = None) -> Form:
        """Return the first form matching all the given criteria (KeyError if none)."""
        for f in self.forms:
            if name is not None and f.name != name:
                continue
            if with_field is not None and with_field not in f.field_names():
                continue
            if with_button is not None and with_button not in f.buttons():
                continue
            return f
        raise KeyError(f"no form name={name} field={with_field} button={with_button} on {self.url}")

    def has_form(self, **kw: Any) -> bool:
        """True when :meth:`form` would find one."""
        try:
            self.form(**kw)
            return True
        except KeyError:
            return False

    def has_control(self, label: str) -> bool:
        """True when a submit button or a link is labelled ``label``."""
        return any(label in f.buttons() for f in self.forms) or self.link(label) is not None

    def link(self, text: str) -> str | None:
        """The href of the first link whose visible text is ``text``."""
        for t, href in self.links:
            if t == text:
                return href
        return None


class _Parser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self._form: Form | None = None
        self._link: tuple[str, list[str]] | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            action = urllib.parse.urljoin(self.base, a.get("action", "")) if a.get("action") else self.base
            self._form = Form(a.get("name", ""), action, (a.get("method") or "GET").upper())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            self._form.inputs.append(Input(
                a.get("name", ""), (a.get("type") or "text").lower(), a.get("value", ""), "checked" in a,
            ))
        elif tag == "a" and "href" in a:
            href = a["href"]
            if not href.startswith("javascript:"):
                href = urllib.parse.urljoin(self.base, href)
            self._link = (href, [])
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "a" and self._link is not None:
            href, parts = self._link
            self.links.append((re.sub(r"\s+", " ", "".join(parts)).strip(), href))
            self._link = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        elif self._link is not None:
            self._link[1].append(data)


def parse_page(url: str, resp: httpx.Response) -> Page:
    """Build a :class:`Page` from an httpx response."""
    p = _Parser(url)
    p.feed(resp.content.decode("iso-8859-1"))
    return Page(url, resp.status_code, resp.headers, resp.content, p.forms, p.links, "\n".join(p.scripts))


_JS_COOKIE = re.compile(r'document\.cookie\s*=\s*"((?:[^"\\]|\\.)*)"')
_JS_REPLACE = re.compile(r'location\.replace\("((?:[^"\\]|\\.)*)"\)')


class PlainClient:
    """httpx-based stand-in for a browser presenting one client certificate (or none).

    ``cert_pem``/``key_pem`` are file paths; the same TLS context is used for every origin (the
    zeus- and palena-like origins never ask for the certificate, so sending it is harmless).
    """

    def __init__(self, ca_bundle: str | Path, cert_pem: str | Path | None = None,
                 key_pem: str | Path | None = None, *, timeout: float = 15.0, max_hops: int = 10) -> None:
        ctx = ssl.create_default_context(cafile=str(ca_bundle))
        if cert_pem:
            ctx.load_cert_chain(str(cert_pem), str(key_pem) if key_pem else None)
        self.ssl_context = ctx
        self.http = httpx.Client(verify=ctx, follow_redirects=False, timeout=timeout)
        self.max_hops = max_hops
        self.history: list[Page] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_pfx(cls, ca_bundle: str | Path, pfx_path: str | Path, password: str, **kw: Any) -> PlainClient:
        """Open a legacy-encrypted .pfx with ``cryptography`` and present its cert + chain."""
        key, cert, chain = pkcs12.load_key_and_certificates(Path(pfx_path).read_bytes(), password.encode())
        assert key is not None and cert is not None
        tmp = tempfile.TemporaryDirectory(prefix="sii-probe-")
        cert_path = Path(tmp.name) / "cert.pem"
        key_path = Path(tmp.name) / "key.pem"
        cert_path.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(chain or [])])
        )
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
        client = cls(ca_bundle, cert_path, key_path, **kw)
        client._tmp = tmp
        return client

    def close(self) -> None:
        """Close connections and remove temporary PEM files."""
        self.http.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests ----------------------------------------------------------------------

    def get(self, url: str, *, follow: bool = True) -> Page:
        """GET ``url``; with ``follow`` also follow redirects and the login page's JavaScript."""
        page = parse_page(url, self.http.get(url))
        return self._follow(page) if follow else self._record(page)

    def post(self, url: str, data: list[tuple[str, str]] | dict[str, str], *, follow: bool = True) -> Page:
        """POST ``data`` urlencoded as ISO-8859-1 (SII's CGIs expect it)."""
        items = list(data.items()) if isinstance(data, dict) else data
        body = urllib.parse.urlencode(items, encoding="iso-8859-1")
        resp = self.http.post(url, content=body.encode("ascii"),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        page = parse_page(url, resp)
        return self._follow(page) if follow else self._record(page)

    def _record(self, page: Page) -> Page:
        self.history.append(page)
        return page

    def _follow(self, page: Page) -> Page:
        for _ in range(self.max_hops):
            self._record(page)
            if page.status in (301, 302, 303, 307) and "location" in page.headers:
                nxt = urllib.parse.urljoin(page.url, page.headers["location"])
                page = parse_page(nxt, self.http.get(nxt))
                continue
            if page.status != 200:
                return page
            replace = _JS_REPLACE.search(page.scripts)
            if replace:
                host = urllib.parse.urlsplit(page.url).hostname or ""
                for m in _JS_COOKIE.finditer(page.scripts):
                    self._set_js_cookie(m.group(1), host)
                nxt = urllib.parse.urljoin(page.url, replace.group(1))
                page = parse_page(nxt, self.http.get(nxt))
                continue
            if "confirm(" in page.scripts and "document.form1.submit()" in page.scripts and page.has_form(name="form1"):
                # The certificate entry page: accept the confirm() and let form1 auto-submit.
                page = self.submit(page, "form1", follow=False)
                self.history.pop()  # recorded again at the top of the loop
                continue
            return page
        return page

    def _set_js_cookie(self, text: str, host: str) -> None:
        # document.cookie = "NAME=VALUE; expires=...; path=/" -> a host-only cookie.
        name, _, rest = text.partition("=")
        value = rest.split(";", 1)[0]
        self.http.cookies.set(name.strip(), value.strip(), domain=host, path="/")

    # -- browsing --------------------------------------------------------------------------

    def submit(self, page: Page, form_name: str | None = None, *, button: str | None = None,
               values: dict[str, str | bool] | None = None, with_field: str | None = None,
               follow: bool = True) -> Page:
        """Submit a form like a browser: defaults + ``values`` (True/False tick checkboxes) + the
        clicked ``button`` (its label; posted as ACEPTAR=<label> or whatever its name is)."""
        form = page.form(form_name, with_field=with_field, with_button=button)
        values = dict(values or {})
        data: list[tuple[str, str]] = []
        for i in form.inputs:
            if not i.name or i.type in ("submit", "button", "image", "reset"):
                continue
            if i.type in ("checkbox", "radio"):
                wanted = values.get(i.name)
                if i.type == "checkbox":
                    on = bool(wanted) if i.name in values else i.checked
                    if on:
                        data.append((i.name, i.value or "on"))
                else:
                    on = (wanted == i.value) if i.name in values else i.checked
                    if on:
                        data.append((i.name, i.value))
                continue
            data.append((i.name, str(values[i.name]) if i.name in values else i.value))
        if button is not None:
            btn = next(i for i in form.inputs if i.type == "submit" and i.value == button)
            data.append((btn.name, btn.value))
        if form.method == "POST":
            return self.post(form.action, data, follow=follow)
        url = form.action.split("?")[0] + "?" + urllib.parse.urlencode(data, encoding="iso-8859-1")
        return self.get(url, follow=follow)

    def activate(self, page: Page, label: str, *, values: dict[str, str | bool] | None = None) -> Page:
        """Press the control labelled ``label``, whether it is a submit button or a link.

        ``javascript:enviar('X')`` links set form1's ACEPTAR to X and submit form1, as the page does.
        """
        for f in page.forms:
            if label in f.buttons():
                return self.submit(page, f.name, button=label, values=values)
        href = page.link(label)
        if href is None:
            raise KeyError(f"no button or link {label!r} on {page.url}")
        m = re.match(r"javascript:enviar\('([^']*)'\)", href)
        if m:
            return self.submit(page, "form1", values={**(values or {}), "ACEPTAR": m.group(1)})
        return self.get(href)


def open_company(client: PlainClient, enroll_url: str, company_rut: str, *, order: str = "A") -> Page:
    """Open the enrolment URL (logging in through redirects if needed) and submit the company RUT
    on every screen that asks for it. Returns the page after that: the user list, or an error page."""
    c_body, c_dv = split(company_rut)
    page = client.get(enroll_url)
    for _ in range(3):  # the company RUT may be asked on one or two screens
        if not page.has_form(with_field="RUT_EMP") or page.has_form(with_field="RUT_USU"):
            break
        form = page.form(with_field="RUT_EMP")
        if "Ingresar" not in form.buttons():
            break
        values: dict[str, str | bool] = {"RUT_EMP": c_body, "DV_EMP": c_dv}
        if "ORDEN" in form.field_names():
            values["ORDEN"] = order
        page = client.submit(page, form.name, button="Ingresar", values=values)
    return page


def enroll(client: PlainClient, enroll_url: str, company_rut: str, user_rut: str, *, admin: bool = False,
           sign: bool = False, registry: bool = False, order: str = "A") -> Page:
    """Walk login → company RUT (once or twice) → user list → new user → confirm → save.

    Returns the last page (the result page on success; an error page otherwise: callers check
    ``visible_text``). Uses only the enrolment URL, forms, field names and button labels.
    """
    u_body, u_dv = split(user_rut)
    page = open_company(client, enroll_url, company_rut, order=order)
    if not page.has_control("Ingresar Nuevo Usuario"):
        return page
    page = client.activate(page, "Ingresar Nuevo Usuario")
    if not page.has_form(with_field="RUT_USU"):
        return page
    page = client.submit(page, page.form(with_field="RUT_USU").name, button="Aceptar", values={
        "RUT_USU": u_body, "DV_USU": u_dv, "SUP_USU": admin, "FIRMAR": sign, "CONSULTAR": registry,
    })
    if not page.has_control("Grabar Usuario"):
        return page
    return client.activate(page, "Grabar Usuario")
