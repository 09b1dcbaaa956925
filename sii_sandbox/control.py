"""The control server (plain HTTP, JSON): state, faults, config and test data of a running sandbox.

Routes are listed in ``sii_sandbox/__init__.py``. Bad input answers 400, a refused state change 409.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from .attributes import flags_from
from .handlers import Handler
from .state import StateError


def control(h: Handler, method: str, body: bytes) -> None:
    """Answer a control-server request with JSON (400 on bad input, 409 on refused state changes)."""
    try:
        status, result = _routes(h, method, body)
    except StateError as e:
        status, result = 409, {"error": str(e), "code": e.code}
    except (ValueError, KeyError, TypeError) as e:
        status, result = 400, {"error": str(e)}
    data = json.dumps(result, ensure_ascii=False, indent=1).encode("utf-8")
    h.send_body(status, data, content_type="application/json; charset=utf-8")


def _routes(h: Handler, method: str, body: bytes) -> tuple[int, Any]:
    rt = h.rt
    path, query = h.path_and_query()
    params = dict(urllib.parse.parse_qsl(query))
    payload: Any = json.loads(body.decode("utf-8")) if body.strip() else {}
    if method == "GET" and path == "/state":
        return 200, rt.state()
    if method == "GET" and path == "/health":
        return 200, {"ok": True}
    if path == "/faults":
        if method == "GET":
            return 200, rt.state()["faults"]
        if method == "DELETE":
            rt.clear_faults()
            return 200, {}
        if method == "POST":
            if not isinstance(payload, dict):
                raise ValueError("faults body must be a JSON object")
            if params.get("replace") in ("1", "true"):
                rt.clear_faults()
            return 200, rt.set_faults(payload)
    if method == "POST" and path == "/reset":
        rt.reset()
        return 200, {"ok": True}
    if method == "POST" and path == "/config":
        return 200, rt.configure(**payload)
    if method == "POST" and path == "/companies/set":
        changes = {k: v for k, v in payload.items() if k != "rut"}
        return 200, rt.store.set_company(payload["rut"], **changes)
    if method == "POST" and path == "/companies":
        items = payload["companies"] if isinstance(payload, dict) and "companies" in payload else payload
        items = items if isinstance(items, list) else [items]
        return 200, {"stored": rt.store.add_companies(items)}
    if method == "POST" and path == "/persons":
        persons = payload.get("persons") if "persons" in payload else {payload["rut"]: payload["name"]}
        rt.store.add_persons(persons)
        return 200, {"stored": len(persons)}
    # Changes to users here happen "behind the bot's back": no log entry, no save counted.
    if path == "/users":
        if method == "GET":
            return 200, rt.store.users(params["company"])
        if method == "POST":
            return 200, rt.store.add_user(payload["company"], payload["rut"], log=False, **flags_from(payload))
        if method == "DELETE":
            company = params.get("company") or payload["company"]
            return 200, rt.store.delete_user(company, params.get("rut") or payload["rut"], log=False)
    if method == "POST" and path == "/users/update":
        flags = flags_from(payload, partial=True)
        return 200, rt.store.update_user(payload["company"], payload["rut"], log=False, **flags)
    if method == "POST" and path == "/sessions/expire":
        return 200, {"expired": rt.store.expire_sessions(payload.get("holder"))}
    return 404, {"error": f"no route {method} {path}"}
