"""Other vendors' MCP servers, measured the same way when they are installed; skipped otherwise."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Peer", "find_peers"]

# Where `python -m bench --help` tells people to install them; both overridable.
ELEVENLABS_VENV = Path(os.environ.get("BENCH_ELEVENLABS_VENV", "/tmp/elevenvenv"))
VAPI_PREFIX = Path(os.environ.get("BENCH_VAPI_PREFIX", "/tmp/vapimcp"))


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
        return Peer("ElevenLabs MCP (Python)", None, env,
                    f"not installed: python -m venv {ELEVENLABS_VENV} && {ELEVENLABS_VENV}/bin/pip install elevenlabs-mcp")
    return Peer("ElevenLabs MCP (Python)", [str(script)], env)


def _vapi() -> Peer:
    entry = VAPI_PREFIX / "node_modules" / "@vapi-ai" / "mcp-server" / "dist" / "index.js"
    node = shutil.which("node")
    env = {"VAPI_TOKEN": "dummy_for_benchmark"}
    if node is None or not entry.exists():
        return Peer("Vapi MCP (Node)", None, env, f"not installed: npm install --prefix {VAPI_PREFIX} @vapi-ai/mcp-server")
    return Peer("Vapi MCP (Node)", [node, str(entry)], env)


def find_peers() -> list[Peer]:
    """Every known peer, installed or not."""
    return [_elevenlabs(), _vapi()]
