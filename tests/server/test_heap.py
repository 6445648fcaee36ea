"""Start-up pauses the cyclic collector and resumes it with the start-up heap frozen."""

from __future__ import annotations

import subprocess
import sys


def test_the_collector_is_paused_while_building_and_on_with_a_frozen_heap_when_serving() -> None:
    # In a child process: freezing the test runner's own heap would leak into every later test.
    code = (
        "import gc\n"
        "from server.heap import pause_collector, resume_collector\n"
        "pause_collector(); assert not gc.isenabled()\n"
        "import server.app\n"
        "assert gc.get_freeze_count() == 0\n"
        "resume_collector(); assert gc.isenabled() and gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_early_exit_leaves_the_collector_on() -> None:
    code = (
        "import gc\n"
        "from server.cli import main\n"
        "assert main(['--version']) == 0 and gc.isenabled() and gc.get_freeze_count() == 0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
