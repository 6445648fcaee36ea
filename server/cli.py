"""`outboundcalls-mcp`: serve over stdio or HTTP, run the demo, read the audit trail, or see or reset the sandbox."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["build_parser", "main"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _settings_help() -> str:
    from outboundcalls_mcp.server.settings import ENV_PREFIX, Settings

    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, frozenset):
            default = ",".join(sorted(default)) or "(empty)"
        rows.append(f"  {ENV_PREFIX}{name.upper():<28} {field.description or ''} [default: {default}]")
    return "settings (environment variables):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outboundcalls-mcp",
        description="MCP server for OutboundCalls AI phone calls, with consent and spend guards.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "demo", "audit", "sandbox"],
        default="serve",
        help="serve (default), demo (a scripted session on the sandbox), audit (the dispatch audit "
        "trail), sandbox status|reset (the persistent sandbox account)",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["status", "reset"],
        default=None,
        help="sandbox: status (where the account lives, its balance and calls) or reset (start the "
        "account and its ledger afresh)",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--sandbox", action="store_true", default=None, help="use the built-in sandbox, no key needed")
    parser.add_argument("--read-only", action="store_true", default=None, help="register no tool that dials or writes")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument("--json", action="store_true", help="audit: print JSON lines")
    parser.add_argument("--limit", type=int, default=50, help="audit: how many entries")
    parser.add_argument("--yes", action="store_true", help="sandbox reset: do not ask first (for scripts)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m outboundcalls_mcp.server`."""
    args = build_parser().parse_args(argv)
    if args.version:
        from outboundcalls.version import __version__

        print(f"outboundcalls-mcp {__version__}")
        return 0
    if args.command == "sandbox" and args.action is None:
        print(
            "outboundcalls-mcp: `sandbox` needs an action: run `outboundcalls-mcp sandbox status` or "
            "`outboundcalls-mcp sandbox reset`.",
            file=sys.stderr,
        )
        return 2
    if args.command != "sandbox" and args.action is not None:
        print(
            f"outboundcalls-mcp: `{args.action}` is an action of `sandbox` only: run "
            f"`outboundcalls-mcp sandbox {args.action}`.",
            file=sys.stderr,
        )
        return 2
    from outboundcalls_mcp.server.settings import SettingsError, load_settings

    try:
        # The sandbox command is about the sandbox's state directory whether or not --sandbox was given.
        sandbox = True if args.command == "sandbox" else args.sandbox
        settings = load_settings(sandbox=sandbox, read_only=args.read_only)
    except SettingsError as exc:
        print(f"outboundcalls-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "demo":
        from outboundcalls_mcp.server.demo import run_demo

        return run_demo()
    if args.command == "audit":
        from outboundcalls_mcp.server.audit_cli import print_audit

        return print_audit(settings, limit=args.limit, as_json=args.json)
    if args.command == "sandbox":
        return _sandbox(settings, args.action, yes=args.yes)
    from outboundcalls_mcp.server.startup import STARTUP_ERRORS, check_startup

    try:
        # Before serving: a policy that does not parse, or that differs from a live process's on the
        # same ledger, stops start-up naming it, instead of failing inside the transport. Over stdio
        # the lifespan joins the ledger before answering anything, and a conflict found there ends
        # the process the same way (_serve_stdio).
        check_startup(settings, join_ledger=args.transport == "http")
    except STARTUP_ERRORS as exc:
        print(f"outboundcalls-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.transport == "http":
        from outboundcalls_mcp.server.http_transport import serve_http

        return serve_http(settings, host=args.host, port=args.port)
    return _serve_stdio(settings)


def _sandbox(settings: Settings, action: str, *, yes: bool) -> int:
    from outboundcalls_mcp.server.sandbox_cli import print_status, run_reset

    if action == "status":
        return print_status(settings)
    # Asked on the terminal only: a host or a pipe on stdin must never answer for the owner.
    return run_reset(settings, yes=yes, ask=input if sys.stdin.isatty() and sys.stdout.isatty() else None)


def _serve_stdio(settings: Settings) -> int:
    from outboundcalls_mcp.server.app import build_server

    _announce(settings)
    build_server(settings, on_startup_error=_exit_naming).run("stdio")
    return 0


def _exit_naming(error: BaseException) -> NoReturn:
    """Exit with a one-line configuration error (a live process on the state directory has another policy)."""
    print(f"outboundcalls-mcp: configuration error: {error}", file=sys.stderr, flush=True)
    # The SDK's stdio transport is already reading stdin in a worker thread that only a line or the
    # end of input releases: a normal exit would wait for the host to close stdin.
    os._exit(2)


def _announce(settings: Settings) -> None:
    """Say on stderr what a person must know before this server runs unattended or simulated."""
    if settings.confirm == "none":
        print(
            f"outboundcalls-mcp: CONFIRM=none: calls are dialed without asking anyone, within "
            f"{settings.max_calls_per_day} calls and {settings.max_credits_per_day:g} estimated credits per 24 h.",
            file=sys.stderr,
        )
    if settings.sandbox:
        print("outboundcalls-mcp: sandbox mode: simulated calls, no real credits.", file=sys.stderr)
