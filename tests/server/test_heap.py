"""Start-up collects only the young generation, seldom; serving freezes the start-up heap and restores the thresholds."""

from __future__ import annotations

import subprocess
import sys


def test_only_young_collections_while_building_then_the_usual_thresholds_with_a_frozen_heap() -> None:
    # In a child process: freezing the test runner's own heap would leak into every later test.
    code = (
        "import gc\n"
        "from outboundcalls_mcp.server.heap import collect_seldom, collect_as_usual\n"
        "usual = gc.get_threshold()\n"
        "collect_seldom(); assert gc.isenabled()\n"
        "older = [gc.get_stats()[n]['collections'] for n in (1, 2)]\n"
        "import outboundcalls_mcp.server.app\n"
        "assert [gc.get_stats()[n]['collections'] for n in (1, 2)] == older, 'an older generation was collected'\n"
        "assert gc.get_stats()[0]['collections'] > 0, 'young collections must keep running'\n"
        "collect_as_usual()\n"
        "assert gc.get_threshold() == usual and gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_early_exit_restores_the_usual_thresholds_without_freezing() -> None:
    code = (
        "import gc\n"
        "from outboundcalls_mcp.server.cli import main\n"
        "usual, frozen = gc.get_threshold(), gc.get_freeze_count()\n"  # 3.12 starts with some frozen
        "assert main(['--version']) == 0 and gc.get_threshold() == usual and gc.get_freeze_count() == frozen\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
