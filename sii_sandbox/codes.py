"""SII's authentication message codes: what each one says, and the full code a page prints.

SII publishes what a login error means by the code's **last two digits** ("Códigos de mensajes de
error"; public copy in ``cl-sii-extraoficial/archivos-oficiales``,
``src/docs/auth/errores/2020-02-07-codigos-de-mensajes-de-error.html``). The texts below are SII's
own wording from that page, for the codes a certificate login can meet. The sentence the live
login page prints next to the code is only known for 27 ("Usted ha superado el máximo de sesiones
autenticadas", code 01.01.190.500.720.27); for the others the sandbox prints SII's published help
text, which is what a user reads about that code.
"""

from __future__ import annotations

# The observed prefix of the login CGI's codes (…720.27) and the sandbox's prefix for the
# enrolment CGIs' codes (SII's is unknown).
LOGIN_CODE_PREFIX = "01.01.190.500.720"
PALENA_CODE_PREFIX = "01.01.209.500.709"

TEXT_TOO_MANY_SESSIONS = (
    "Usted ha superado el máximo de sesiones autenticadas. Para continuar, cierre alguna de sus "
    "sesiones o espere que expiren."
)

# Last two digits -> SII's text (one or more paragraphs).
AUTH_MESSAGES: dict[int, tuple[str, ...]] = {
    9: (("Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora "
        "para que se libere automáticamente antes de volver a digitarla."),),
    19: (("Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora "
         "para que se libere automáticamente, antes de volver a intentar ingresarla."),),
    27: (TEXT_TOO_MANY_SESSIONS,
         ("Debe cerrar sesiones en el link \"cerrar sesión\", ya que permite un máximo de 10 sesiones abiertas "
         "al mismo tiempo. Sin embargo si no tiene ningún navegador abierto, debe esperar 1 hora desde el "
         "momento en que se autenticó.")),
    28: (("Usted no se ha autenticado en el sitio Web del SII o puede que su sesión haya caducado. Para "
         "continuar, debe identificarse nuevamente con su RUT y Clave Tributaria."),),
    29: (("Transcurrió el tiempo máximo que puede durar la sesión. Para continuar debe identificarse "
         "nuevamente."),),
    33: (("Debe autenticarse con Clave Tributaria, NO con Certificado Digital. Si quiere trabajar con "
         "Certificado Digital, debe ingresar al sitio Web del SII, sección Servicios online / Clave Tributaria "
         "y Representantes electrónicos / Clave Tributaria / Cambiar clave y datos de Autenticación. Dentro "
         "de este formulario, en la última sección, podrá indicar si se trabajará sólo con Clave Tributaria, "
         "sólo con Certificado Digital o con ambas indistintamente."),),
    34: ("Intente ingresar nuevamente su Certificado Digital.",),
    35: (("El Certificado Digital que usted ha seleccionado para identificarse fue revocado por la entidad "
         "que lo emitió. Debe solicitar otro."),),
    36: (("Debe solicitar un nuevo Certificado Digital a la entidad emisora. El que ingresó se encuentra "
         "vencido."),),
    37: (("Certificado Digital inválido. Verifique que corresponda a uno emitido por entidades certificadoras "
         "autorizadas por el SII. El listado de entidades certificadoras autorizadas por el SII puede verse "
         "en la pregunta ¿Cuál es el listado de entidades certificadoras autorizadas por el SII?"),),
    38: (("Se recomienda cerrar el browser (página de navegación) e intentar de nuevo. Si el error persiste, "
         "debe solicitar un nuevo Certificado Digital emitido por una entidad certificada por el SII."),),
    41: (("Revise si el RUT del Representante Legal de la empresa está correctamente ingresado, si hubo un "
         "cambio de Representante Legal o si hay más de un representante, ya que éste no corresponde con el "
         "existente en la base de datos del SII. Inténtelo de nuevo."),
         ("Si el error persiste, diríjase a la oficina del SII que le corresponde a la empresa para verificar "
         "cuál es el Representante Legal existente en los registros del SII.")),
    49: (("Su Código Provisorio se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora "
         "para que se desbloquee antes de volver a ingresarla."),),
    55: (("Se le recuerda que quedan 3 intentos de ingreso de su Clave Tributaria. Si no la ingresa "
         "correctamente, quedará bloqueada por 1 hora."),),
}
AUTH_CODES: tuple[int, ...] = tuple(AUTH_MESSAGES)


def full_code(suffix: int, prefix: str = LOGIN_CODE_PREFIX) -> str:
    """The printed code, e.g. ``full_code(27) == "01.01.190.500.720.27"`` (two digits: ``…720.09``)."""
    return f"{prefix}.{suffix:02d}"


def check_code(value: object) -> int:
    """The code suffix as an int (``33``, ``"33"`` or a full code ending in ``.33``); ValueError if SII's
    table has no text for it."""
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise ValueError(f"expected an authentication code, not {value!r}")
    try:
        code = int(text.rsplit(".", 1)[-1])
    except ValueError:
        raise ValueError(f"expected an authentication code, not {value!r}") from None
    if code not in AUTH_MESSAGES:
        raise ValueError(f"unknown authentication code {value!r}; known: {list(AUTH_CODES)}")
    return code
