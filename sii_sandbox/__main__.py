"""Command line: ``python -m sii_sandbox [serve] [options]`` and ``python -m sii_sandbox pki DIR``.

``serve`` (the default) starts the sandbox, prints the ``SII_*``/``SANDBOX_*`` settings one per
line (and writes them to ``--env-file``), then runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .pki import ensure_pki
from .server import Sandbox


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser: subcommands ``pki DIR`` and ``serve`` with its options."""
    parser = argparse.ArgumentParser(prog="python -m sii_sandbox", description="SII stand-in for Autoriza.")
    sub = parser.add_subparsers(dest="command")

    pki = sub.add_parser("pki", help="write (or reuse) a test PKI in DIR and print its manifest path")
    pki.add_argument("dir", type=Path)

    serve = sub.add_parser("serve", help="run the sandbox (default)")
    serve.add_argument("--pki", type=Path, default=Path("var/sandbox/pki"), help="PKI directory (created if missing)")
    serve.add_argument("--state", type=Path, default=Path("var/sandbox/state.json"), help="state JSON file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added to every page")
    serve.add_argument("--jitter-ms", type=float, default=0.0, help="plus uniform random 0..N ms")
    serve.add_argument("--env-file", type=Path, help="also write the printed settings to this file")
    serve.add_argument("--login-entry", choices=("certificate", "password"), default="certificate")
    serve.add_argument("--company-rut-screens", type=int, choices=(1, 2), default=1)
    serve.add_argument("--actions", choices=("links", "buttons"), default="buttons")
    serve.add_argument("--login-response", choices=("javascript", "redirect"), default="javascript")
    serve.add_argument("--layout", choices=("standard", "alternate"), default="standard")
    serve.add_argument("--require-client-chain", action="store_true",
                       help="trust only the root CA: clients must send the intermediate")
    for name in ("zeus", "hercules", "palena", "control"):
        serve.add_argument(f"--{name}-port", type=int, default=0, help="0 = ephemeral (default)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    serve.add_argument("--faults", help="initial faults as a JSON object")
    serve.add_argument("--verbose", action="store_true", help="log requests and TLS failures")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0].startswith("-"):
        args_list.insert(0, "serve")  # serve is the default subcommand
    args = build_parser().parse_args(args_list)

    if args.command == "pki":
        pki = ensure_pki(args.dir)
        print(pki.manifest_path, flush=True)
        return 0

    sb = Sandbox(
        args.pki, args.state, host=args.host, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
        login_entry=args.login_entry, company_rut_screens=args.company_rut_screens, actions=args.actions,
        login_response=args.login_response, layout=args.layout, require_client_chain=args.require_client_chain,
        ports={n: getattr(args, f"{n}_port") for n in ("zeus", "hercules", "palena", "control")},
        seed=args.seed, verbose=args.verbose,
    )
    if args.faults:
        sb.set_faults(json.loads(args.faults))
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with sb:
        lines = sb.env_lines()
        if args.env_file:
            args.env_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.env_file.with_name(args.env_file.name + ".tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, args.env_file)  # readers never see a half-written file
        print("\n".join(lines), flush=True)
        while not stop.wait(0.5):
            pass
    print("sii_sandbox: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
