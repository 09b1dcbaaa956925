"""pytest fixtures for tests that need the SII sandbox (a pytest plugin module).

Register once in the root conftest: ``pytest_plugins = ["sii_sandbox.testing"]``. Fixtures:

- ``sandbox_pki_dir`` (session): a PKI directory in the session's tmp dir, generated once.
- ``sandbox_server`` (session): one running :class:`~sii_sandbox.server.Sandbox` for the session.
- ``sandbox`` (function): that server after ``reset()``: seeded state, no faults, initial config,
  nobody logged in. Tests may change faults/config freely; the next test starts clean again.
- ``sandbox_client`` (function): factory ``sandbox_client(name="demo") -> PlainClient`` presenting
  the named PKI certificate (None = no certificate); clients are closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .pki import ensure_pki
from .probe import PlainClient
from .server import Sandbox


@pytest.fixture(scope="session")
def sandbox_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a complete sandbox PKI, generated once per test session (~1 s)."""
    d = tmp_path_factory.mktemp("sii_sandbox_pki")
    ensure_pki(d)
    return d


@pytest.fixture(scope="session")
def sandbox_server(sandbox_pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A Sandbox running for the whole session (state file in the session tmp dir)."""
    state = tmp_path_factory.mktemp("sii_sandbox_state") / "state.json"
    with Sandbox(pki_dir=sandbox_pki_dir, state_path=state) as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The session's Sandbox reset to the seeded state (no faults, initial config) for this test."""
    sandbox_server.reset()
    yield sandbox_server
    # Leave nothing behind for tests that use sandbox_server directly.
    sandbox_server.reset()


@pytest.fixture
def sandbox_client(sandbox: Sandbox) -> Iterator[Callable[..., PlainClient]]:
    """Factory of plain-HTTP clients presenting a PKI certificate by name (``None``: no certificate)."""
    clients: list[PlainClient] = []

    def make(name: str | None = "demo", **kw: object) -> PlainClient:
        if name is None:
            client = PlainClient(sandbox.pki.ca_bundle, **kw)  # type: ignore[arg-type]
        else:
            f = sandbox.pki[name]
            client = PlainClient(sandbox.pki.ca_bundle, f.cert_pem, f.key_pem, **kw)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
