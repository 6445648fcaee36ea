"""Logging to stderr only, with the API key and the other secrets scrubbed from every record (defence in depth)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from outboundcalls_mcp.server.settings import Settings

__all__ = ["RedactSecrets", "StderrHandler", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces configured secrets in a record's final message before any handler writes it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        text = message
        for secret in self.secrets:
            text = text.replace(secret, "***")
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        for secret in self.secrets:
            exc_text = exc_text.replace(secret, "***")
        if text != message or exc_text != (record.exc_text or ""):
            record.msg, record.args = text, None
            record.exc_text = exc_text or None
        return True


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to sys.stderr as it is when each record is written, unless a stream was set explicitly."""

    # Bound once to the sys.stderr of the first build_server, the handler kept writing to a stream
    # that a host or a test had since replaced and closed ("I/O operation on closed file").

    def __init__(self) -> None:
        super().__init__()
        self._pinned: TextIO | None = None

    @property
    def stream(self) -> TextIO:
        return self._pinned if self._pinned is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._pinned = None if value is sys.stderr else value


def configure_logging(settings: Settings) -> None:
    """Route all logs to stderr at the configured level; stdout belongs to the protocol."""
    secrets = [
        s.get_secret_value()
        for s in (
            settings.api_key,
            settings.http_token,
            settings.webhook_secret,
            settings.database_url,
            settings.request_state_key,
        )
        if s
    ]
    if settings.database_url is not None:
        # A driver may quote the URL's parts apart: the password alone is redacted too.
        from urllib.parse import urlsplit

        password = urlsplit(settings.database_url.get_secret_value()).password
        secrets += [password] if password else []
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StderrHandler)), None)
    if handler is None:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    handler.filters = [RedactSecrets(secrets)]
    root.setLevel(settings.log_level)
    # httpx2 logs every request URL at INFO; they are noise for an assistant's host.
    logging.getLogger("httpx2").setLevel(max(logging.WARNING, root.level))
