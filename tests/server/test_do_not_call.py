"""The do-not-call file: any written form per line, comments allowed, and a bad file stops start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from outboundcalls_mcp.server.policy import DispatchPolicy, DoNotCallFileError, load_do_not_call


def test_numbers_in_any_written_form_become_e164_and_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text(
        "# people who asked not to be called\n"
        "\n"
        "+1 (415) 555-0134\n"
        "212-555-0199   # national form, read in the default region\n"
        "   +44 20 7946 0958\n"
        "+14155550134\n",
        encoding="utf-8",
    )
    assert load_do_not_call(path, "US") == frozenset({"+14155550134", "+12125550199", "+442079460958"})


def test_national_forms_are_read_in_the_given_default_region(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("020 7946 0958\n", encoding="utf-8")
    assert load_do_not_call(path, "GB") == frozenset({"+442079460958"})


def test_a_file_saved_with_a_byte_order_mark_and_crlf_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_bytes("\ufeff+14155550134\r\n# end\r\n".encode())
    assert load_do_not_call(path) == frozenset({"+14155550134"})


def test_an_unparseable_line_stops_start_up_naming_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("+14155550134\n# ok so far\n1-800-FLOWERS\n", encoding="utf-8")
    with pytest.raises(DoNotCallFileError) as caught:
        load_do_not_call(path)
    assert (caught.value.path, caught.value.line) == (path, 3)
    assert f"{path}:3" in str(caught.value)
    assert "'1-800-FLOWERS'" in str(caught.value)
    assert caught.value.setting == "OUTBOUNDCALLS_DO_NOT_CALL_FILE"


def test_a_missing_file_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.txt"
    with pytest.raises(DoNotCallFileError) as caught:
        load_do_not_call(path)
    assert caught.value.line is None
    assert str(path) in str(caught.value)


def test_a_directory_or_binary_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DoNotCallFileError):
        load_do_not_call(tmp_path)
    binary = tmp_path / "dnc.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DoNotCallFileError) as caught:
        load_do_not_call(binary)
    assert str(binary) in str(caught.value)


def test_from_values_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("415 555 0134\n", encoding="utf-8")
    policy = DispatchPolicy.from_values(do_not_call_file=path, default_region="US")
    assert policy.do_not_call == frozenset({"+14155550134"})


def test_an_empty_file_means_nobody_is_excluded(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("# nobody yet\n", encoding="utf-8")
    assert load_do_not_call(path) == frozenset()
