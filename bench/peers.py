"""Other vendors' MCP servers, measured the same way when they are installed; skipped otherwise."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.startup import ListingSize, listing_size, spawn_once
from bench.stdio_rpc import StdioServer

__all__ = ["Peer", "PeerStartup", "find_peers", "measure_peer_startups"]

# Where `python -m bench --help` tells people to install them; both overridable.
ELEVENLABS_VENV = Path(os.environ.get("BENCH_ELEVENLABS_VENV", "/tmp/elevenvenv"))
VAPI_PREFIX = Path(os.environ.get("BENCH_VAPI_PREFIX", "/tmp/vapimcp"))
RETELL_PREFIX = Path(os.environ.get("BENCH_RETELL_PREFIX", "/tmp/retellmcp"))
RETELL_PACKAGE = "@abhaybabbar/retellai-mcp-server"  # the community Retell server the table measured (1.0.2)


@dataclass(frozen=True)
class Peer:
    """A peer's stdio command and the dummy credentials it needs to start (it never reaches its API)."""

    name: str
    argv: list[str] | None
    env: dict[str, str]
    missing: str = ""


def _elevenlabs() -> Peer:
    script = ELEVENLABS_VENV / "bin" / "elevenlabs-mcp"
    env = {"ELEVENLABS_API_KEY": "sk_dummy_for_benchmark"}
    if not script.exists():
        return Peer(
            "ElevenLabs MCP (Python)",
            None,
            env,
            f"not installed: python -m venv {ELEVENLABS_VENV} && {ELEVENLABS_VENV}/bin/pip install elevenlabs-mcp",
        )
    return Peer("ElevenLabs MCP (Python)", [str(script)], env)


def _vapi() -> Peer:
    entry = VAPI_PREFIX / "node_modules" / "@vapi-ai" / "mcp-server" / "dist" / "index.js"
    node = shutil.which("node")
    env = {"VAPI_TOKEN": "dummy_for_benchmark"}
    if node is None or not entry.exists():
        return Peer(
            "Vapi MCP (Node)", None, env, f"not installed: npm install --prefix {VAPI_PREFIX} @vapi-ai/mcp-server"
        )
    return Peer("Vapi MCP (Node)", [node, str(entry)], env)


def _retell() -> Peer:
    entry = RETELL_PREFIX / "node_modules" / RETELL_PACKAGE / "build" / "index.js"
    node = shutil.which("node")
    env = {"RETELL_API_KEY": "dummy_for_benchmark"}
    if node is None or not entry.exists():
        return Peer(
            "Retell community MCP (Node)",
            None,
            env,
            f"not installed: npm install --prefix {RETELL_PREFIX} {RETELL_PACKAGE}",
        )
    return Peer("Retell community MCP (Node)", [node, str(entry)], env)


def find_peers() -> list[Peer]:
    """Every known peer, installed or not."""
    return [_elevenlabs(), _vapi(), _retell()]


@dataclass
class PeerStartup:
    """One server's spawn -> tools/list times in the peers' interleaved rounds, and its tool list."""

    times_ms: list[float]
    listing: ListingSize | None = None
    rss_mib: float = 0.0
    failure: str = ""


def measure_peer_startups(
    sides: dict[str, Callable[[], StdioServer]], rounds: int, *, progress: Callable[[str], None]
) -> dict[str, PeerStartup]:
    """Spawn every side once per round, interleaved and alternating who goes first (handshake era only).

    Ours and the floor are spawned in these same rounds: the machine's speed drifts within minutes,
    so a peer is only compared with what was measured next to it.
    """
    results = {name: PeerStartup([]) for name in sides}
    names = list(sides)
    for round_no in range(rounds):
        for name in names if round_no % 2 == 0 else names[::-1]:
            found = results[name]
            if found.failure:
                continue
            try:
                _, listed_ms, _, rss, tools = spawn_once(sides[name]())
            except (RuntimeError, OSError, ValueError) as exc:
                found.failure = f"failed to start: {exc}"
                continue
            found.times_ms.append(listed_ms)
            found.rss_mib = max(found.rss_mib, rss)
            found.listing = found.listing or listing_size(tools)
        progress(f"peers round {round_no + 1}/{rounds}")
    return results
