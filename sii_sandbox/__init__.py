"""sii_sandbox: a local stand-in for SII's "Mantención de usuarios autorizados" pages.

It reproduces what /work/shared/sii-reference.md documents (hosts, certificate login, pages,
encoding, errors) on loopback, so the bot can be developed and tested without the real SII.

Command line
------------
``python -m sii_sandbox pki DIR``       write (or reuse) a test PKI in DIR; prints manifest.json's path.
``python -m sii_sandbox [serve] ...``   run it; prints ``NAME=value`` settings, one per line:
``SII_ENROLL_URL``, ``SII_CERT_ORIGINS``, ``SII_CA_BUNDLE``, ``SII_LOGOUT_URL``, ``SANDBOX_DEMO_PFX``,
``SANDBOX_DEMO_PFX_PASSWORD``, ``SANDBOX_DEMO_COMPANY_RUT``, ``SANDBOX_MARKET_COMPANY_RUT`` (a company
on market software: six attributes), ``SANDBOX_REPRESENTED_COMPANY_RUT`` (where the firm
representative 13322924-8 is Usuario Administrador), ``SANDBOX_REPRESENTATIVE_PFX`` (his own
certificate, password demo1234), ``SANDBOX_STATE_URL``, ``SANDBOX_CONTROL_URL``, ``SANDBOX_PKI_MANIFEST``. Options: ``--pki DIR`` ``--state FILE``
``--host`` ``--latency-ms`` ``--jitter-ms`` ``--env-file PATH`` ``--login-entry {certificate,password}``
``--company-rut-screens {1,2}`` ``--actions {links,buttons}`` ``--login-response {javascript,redirect}``
``--layout {standard,alternate}`` ``--require-client-chain`` ``--{zeus,hercules,palena,control}-port N``
``--seed N`` ``--faults JSON`` ``--verbose``.

Python API (stable)
-------------------
``from sii_sandbox.server import Sandbox``::

    with Sandbox(pki_dir, state_path=None, *, host="127.0.0.1", latency_ms=0, jitter_ms=0,
                 login_entry="certificate", company_rut_screens=1, actions="buttons",
                 login_response="javascript", layout="standard", require_client_chain=False,
                 ports=None, seed=0, verbose=False) as sb:
        sb.env                  # dict of the printed settings
        sb.origins              # {"zeus", "hercules", "palena": https origins; "control": http origin}
        sb.pki                  # sii_sandbox.pki.Pki: sb.pki["demo"].path / .password / .holder_rut /
                                #   .holder_name / .cert_pem / .key_pem / .kind / .description;
                                #   sb.pki.ca_bundle; names: demo admin2 representative expired
                                #   not_yet_valid unknown_ca serial_only no_rut lowercase_k company_holder
                                #   pem garbage
        sb.state()              # dict, same as GET /state (also "saves" and "max_concurrent_sessions_by_rut")
        sb.users(company_rut)   # [{"rut", "name", "admin", "folios", "annul", "sign", "send", "registry",
                                #   "authorized_by", ...}]
        sb.set_faults({...}, **more); sb.clear_faults(); sb.faults()
        sb.configure(login_entry=..., company_rut_screens=..., actions=..., login_response=...,
                     layout=..., latency_ms=..., jitter_ms=..., require_client_chain=...); sb.config()
        sb.reset()              # seeded state + no faults + initial config + everybody logged out
        sb.add_company(rut, name, admins=[...], *, may_operate=True, users=None, layout="mipyme")
        sb.add_companies([...]); sb.set_company(rut, name=..., may_operate=..., admins=[...], layout=...)
        sb.add_person(rut, name)
        # Users behind the pages' back (drift: no log entry, no save counted). Flags: admin folios annul
        # sign send registry, or attributes={"SUP_USU": True, "OBTENER": ..., "ANULAR": ..., "FIRMAR": ...,
        # "ENVIAR": ..., "CONSULTAR": ...}. update_user changes only the attributes given.
        sb.add_user(company_rut, user_rut, *, attributes=None, **flags)
        sb.update_user(company_rut, user_rut, *, attributes=None, **flags); sb.delete_user(company_rut, user_rut)
        sb.expire_sessions(holder_rut=None)

Company layouts (``layout`` of a company, not the ``layout`` config option, which is markup):
"mipyme" pages show SUP_USU Usuario Administrador, FIRMAR Firmar Documentos, CONSULTAR Registro;
"market" pages show SUP_USU, OBTENER Solicitar Folios, ANULAR Anular Documentos, FIRMAR, ENVIAR
Enviar Documentos, CONSULTAR Consulta. See :mod:`sii_sandbox.attributes`. Edits change only the
attributes the company's page shows.

Fixtures: ``sii_sandbox.testing`` (``sandbox_pki_dir``, ``sandbox_server``, ``sandbox``,
``sandbox_client``). Plain-HTTP walker: ``sii_sandbox.probe`` (``PlainClient``, ``enroll``).

Control server (plain HTTP, JSON): ``GET /state``, ``GET /health``, ``GET|POST|DELETE /faults``
(POST merges; ``?replace=1`` clears first; null/false removes one), ``POST /reset``,
``POST /config``, ``POST /companies`` (one object, a list, or ``{"companies": [...]}``),
``POST /persons`` (``{"rut", "name"}`` or ``{"persons": {rut: name}}``), ``GET /users?company=RUT``,
``POST /companies/set`` (``{"rut", "name"?, "may_operate"?, "admins"?, "layout"?}``),
``POST /users`` (``{"company", "rut", "admin", "sign", "registry", ...}`` or ``{"company", "rut",
"attributes": {"SUP_USU": true, ...}}``; 409 if already there), ``POST /users/update`` (``{"company",
"rut", "attributes": {...}}``: only those change; 409 for an unknown user), ``DELETE
/users?company=RUT&rut=RUT`` (409 for an unknown user), ``POST /sessions/expire`` (``{"holder"?}``).
User changes through the control server are drift: no ``log`` entry, no ``saves`` count.

``GET /state`` also has ``saves`` (``{company: {user: n}}``: Grabar Usuario / Guardar Cambios writes,
deletes included) and ``max_concurrent_sessions_by_rut`` (``{rut: n}``: the highest number of live
sessions a holder had at once; a session lasts from login to logout or expiry).

Faults (``sb.set_faults`` / ``POST /faults``)
---------------------------------------------
=========================  ==================================================================
``company_not_authorized`` true or [company RUTs]: "la empresa no está autorizada para operar en
                           esta modalidad" after the company RUT form (unknown companies and
                           ``may_operate=False`` ones always get it).
``holder_not_admin``       true or [company RUTs]: "Usted no está autorizado para operar en la
                           empresa <RUT>" (also natural when the holder administers nothing there).
``user_exists``            true or [company RUTs]: "Grabar Usuario" finds the user already there
                           (a race: the user is inserted, then the error page); adding a user that
                           is in the list always gets it at "Aceptar".
``too_many_sessions``      true: login answers "Usted ha superado el máximo de sesiones
                           autenticadas" + code 01.01.190.500.720.27.
``max_sessions``           N or {RUT: N} (``"*"``: everybody else): same answer once the holder has N
                           live sessions (logout frees one). SII's own limit is 10.
``login_error``            an SII authentication code for every certificate login: NN, "NN" or a full
                           code ("01.01.190.500.720.35"); {"code": NN, "times": N} (only the next N
                           logins); or {RUT: NN or {"code", "times"}} per holder (``"*"``: anyone).
                           Codes: 9 19 27 28 29 33 34 35 36 37 38 41 49 55 (sii_sandbox.codes). The
                           login answers 200 with SII's text for that code + "El código de este
                           mensaje es 01.01.190.500.720.NN"; no session is opened. GET /faults shows
                           it normalized: {RUT or "*": {"code", "times"}}.
``login_error_style``      "page" (default) or "alert": the same text + code in ``alert('…')``, then
                           to the portal (also used by the …27 and …28/…29 answers).
``login_throttled``        true: login answers the throttling page (code 01.01.190.500.720.28).
``throttle_logins``        N: same after more than N logins of a holder within
                           ``throttle_window_s`` (default 60).
``session_expiry_pages``   N: a session dies after N enrolment pages; the next one redirects to login.
``session_expiry_steps``   [steps]: a session dies when it reaches one of these enrolment steps.
``session_expiry_count``   N: only the next N sessions die (then the three session_expiry_* faults
                           clear themselves): ``{"session_expiry_steps": ["eu_graba_usuario"],
                           "session_expiry_count": 1}`` expires the session once, right at the save.
``session_expired_code``   28 or 29: a request whose session died or expired (a stale TOKEN) answers
                           200 with SII's …28 ("Usted no se ha autenticado … sesión haya caducado")
                           or …29 ("Transcurrió el tiempo máximo que puede durar la sesión") text and
                           code 01.01.209.500.709.NN instead of the redirect to the login.
``outage``                 true (every login and enrolment page; not the portal) or [steps]: 302 to
                           ``<zeus>/ayudas/900.html``, SII's "servicio no disponible" help page.
``outage_seconds``         S: the outage ends S seconds after this is set (the faults clear themselves).
``outage_pages``           N: the outage ends after N redirected pages.
``error_after_save``       true, [company RUTs] or a rate 0..1: Grabar Usuario / Guardar Cambios
                           (edit or delete) writes, then answers an error page instead of the result.
``error_after_save_answer`` "generic" (default: the 200 "No ha sido posible completar su solicitud"
                           page) or "http500".
``waf``                    true (all enrolment steps, before the session check) or [steps]:
                           200 block page; ``waf_style`` "transaccion" (default: "Transaccion
                           Rechazada … ID: n") or "f5" ("The requested URL was rejected … support ID").
``http500_rate``           0..1: that fraction of requests answer HTTP 500, seeded RNG
                           (``seed``); ``http500_steps`` limits the steps (default enrolment steps).
``generic_error``          true or [steps]: "No ha sido posible completar su solicitud. Inténtelo
                           más tarde" + "El código de este mensaje es 01.01.209.500.709.21".
``generic_error_rate``     0..1: that fraction of requests get that page (seeded RNG, like
                           http500_rate); ``generic_error_steps`` limits the steps (default enrolment
                           steps). Both rates happen before the page's work: a save is not written.
``alt_layout``             true: alternative markup (other nesting/order/wrappers, same names/texts).
``login_alert``            true or text: login answers 200 + ``alert('…')`` then goes to the portal.
``no_certificate``         true: login answers 302 to errorp.html (as with a certificate without RUT).
``latency_ms``/``jitter_ms`` shortcuts for ``configure``.
=========================  ==================================================================

Steps (fault targets): eu_enrola_usuarios, eu_valida_empresa, eu_lista_usuarios, eu_ingresa_usuario,
eu_confirma_usuario, eu_graba_usuario, eu_modifica_usuario, eu_actualiza_usuario, CAutInicio,
portal, IngresoCertificado, IngresoRutClave, autTermino, errorp, clave_login, ayudas.
"""

from __future__ import annotations

__all__ = ["Sandbox", "ensure_pki"]


def __getattr__(name: str) -> object:
    # Lazy so that ``python -m sii_sandbox pki`` and the pytest plugin import only what they use.
    if name == "Sandbox":
        # Loaded on use (see above): the server pulls in every page and handler.
        from .server import Sandbox

        return Sandbox
    if name == "ensure_pki":
        from .pki import ensure_pki

        return ensure_pki
    raise AttributeError(name)
