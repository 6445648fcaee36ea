"""Server logs go to stderr as it is now, not as it was when the first server was built."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from outboundcalls_mcp.server.logs import StderrHandler, configure_logging
from tests.harness import make_settings


def test_logs_follow_sys_stderr_after_it_is_replaced_and_the_old_one_closed(tmp_path: Path) -> None:
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        configure_logging(make_settings(tmp_path))
    first.close()
    with contextlib.redirect_stderr(second):
        logging.getLogger("outboundcalls.test").warning("written after the swap")
    assert "WARNING outboundcalls.test: written after the swap" in second.getvalue()
    assert "Logging error" not in second.getvalue()


def test_a_stream_set_explicitly_is_kept_until_stderr_is_set_back(tmp_path: Path) -> None:
    configure_logging(make_settings(tmp_path))
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, StderrHandler))
    assert isinstance(handler, logging.StreamHandler)
    pinned = io.StringIO()
    previous = handler.setStream(pinned)
    assert previous is not None  # the stream it had: stderr
    try:
        logging.getLogger("outboundcalls.test").warning("to the pinned stream")
    finally:
        handler.setStream(previous)
    assert "to the pinned stream" in pinned.getvalue()
    assert handler.stream is not pinned
