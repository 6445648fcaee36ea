"""The owner's do-not-call file: one number per line in any written form, read once at start-up."""

from __future__ import annotations

from pathlib import Path

from outboundcalls.numbers import InvalidPhoneNumberError, parse_phone

__all__ = ["DoNotCallFileError", "load_do_not_call"]


class DoNotCallFileError(ValueError):
    """The do-not-call file is missing, unreadable or has a line that is not a phone number."""

    setting = "OUTBOUNDCALLS_DO_NOT_CALL_FILE"

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{self.setting}: {where}: {message}")
        self.path = path
        self.line = line


def load_do_not_call(path: Path, default_region: str = "US") -> frozenset[str]:
    """The E.164 numbers in a do-not-call file (national forms read in default_region), # comments allowed."""
    try:
        # utf-8-sig: a file saved by Windows Notepad starts with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DoNotCallFileError(path, None, "the file does not exist; create it or unset the setting") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DoNotCallFileError(path, None, f"the file cannot be read as UTF-8 text ({exc})") from None
    numbers: set[str] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            numbers.add(parse_phone(entry, default_region).e164)
        except InvalidPhoneNumberError as exc:
            # A line that does not parse stops start-up: skipping it would call someone who opted out.
            raise DoNotCallFileError(path, line_number, str(exc)) from None
    return frozenset(numbers)
