"""RecentQuestions: a repeated preview is worded as before, and memory stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.dispatch_text import RecentQuestions
from tools.dispatch_models import DispatchArgs, Prepared, Preview

T0 = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def _prepared(number: str) -> tuple[DispatchArgs, Prepared]:
    args = DispatchArgs(agent_id="clxagent", to_number=number)
    view = Preview(to=number, agent_id="clxagent")
    return args, Prepared(args=args, view=view, question=f"Call {number}?")


def test_a_question_is_remembered_within_its_ttl_and_forgotten_after() -> None:
    book = RecentQuestions(ttl=timedelta(minutes=5))
    args, prepared = _prepared("+14155550134")
    book.put(args, prepared, T0)
    assert book.get(args, T0 + timedelta(minutes=4)) is prepared
    assert book.get(args, T0 + timedelta(minutes=5)) is None


def test_only_the_wording_is_remembered_not_the_services_record_of_the_preview() -> None:
    book = RecentQuestions(ttl=timedelta(minutes=5))
    args, prepared = _prepared("+14155550134")
    book.put(args, prepared.model_copy(update={"handle": {"pre-flight": "record"}}), T0)
    remembered = book.get(args, T0)
    assert remembered is not None and remembered.handle is None
    assert (remembered.args, remembered.view, remembered.question) == (prepared.args, prepared.view, prepared.question)


def test_the_oldest_questions_are_dropped_beyond_the_count_cap() -> None:
    book = RecentQuestions(ttl=timedelta(minutes=5))
    first, _ = _prepared("+14155550000")
    for i in range(RecentQuestions.MAX_REMEMBERED + 10):
        args, prepared = _prepared(f"+1415555{i:04d}")
        book.put(args, prepared, T0)
    assert book.get(first, T0) is None
    assert len(book._shown) == RecentQuestions.MAX_REMEMBERED  # noqa: SLF001 - the bound is the point
