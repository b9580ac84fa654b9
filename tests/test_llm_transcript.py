"""The fence of contract A, item by item: what ``Transcript`` shows for each order of events.

The page's renderer follows the same rule; these cases are the ones it must agree on.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.shared.conversation import Completed, Discarded, Fenced, Transcript, check_prompt
from services.shared.settings import Settings


def _delta(attempt: int, seq: int, text: str, turn: int = 1) -> tuple[str, dict[str, Any]]:
    return "delta", {"turn": turn, "attempt": attempt, "seq": seq, "text": text}


def _retry(attempt: int) -> tuple[str, dict[str, Any]]:
    why = f"attempt {attempt - 1} stopped"
    return "retry", {"turn": 1, "attempt": attempt, "discarded_from": attempt - 1, "why": why}


def _complete(attempt: int, text: str) -> tuple[str, dict[str, Any]]:
    return "complete", {"turn": 1, "attempt": attempt, "text": text, "chars": len(text)}


def _render(*items: tuple[str, dict[str, Any]]) -> tuple[Transcript, list[Any]]:
    transcript = Transcript()
    changes = [transcript.apply(topic, data) for topic, data in items]
    return transcript, changes


def test_a_retry_discards_the_text_of_the_attempt_before() -> None:
    transcript, changes = _render(
        ("turn", {"turn": 1, "question_id": "q", "prompt": "hi"}),
        _delta(1, 0, "Attempt one "),
        _delta(1, 1, "was cut"),
        _retry(2),
        _delta(2, 0, "Attempt two."),
        _complete(2, "Attempt two."),
    )
    (discarded,) = [c for c in changes if isinstance(c, Discarded)]
    assert (discarded.from_attempt, discarded.attempt, discarded.chars) == (1, 2, 19)
    assert discarded.why == "attempt 1 stopped"
    assert isinstance(changes[-1], Completed) and changes[-1].matched
    assert transcript.turns[1].text == "Attempt two."


def test_a_zombies_late_deltas_are_fenced_before_and_after_the_end() -> None:
    transcript, changes = _render(
        _delta(1, 0, "one "),
        _retry(2),
        _delta(2, 0, "two "),
        _delta(1, 1, "late "),  # the paused attempt wakes: lower attempt
        _delta(2, 1, "done."),
        _complete(2, "two done."),
        _delta(1, 2, "later still"),  # after the end
    )
    fenced = [c for c in changes if isinstance(c, Fenced)]
    assert [f.attempt for f in fenced] == [1, 1]
    assert "superseded" in fenced[0].why and "already complete" in fenced[1].why
    assert transcript.turns[1].text == "two done." and transcript.turns[1].fenced == 2


def test_a_delta_read_again_changes_nothing_and_seq_orders_the_text() -> None:
    transcript, _ = _render(_delta(1, 1, "world"), _delta(1, 0, "hello "), _delta(1, 0, "hello "))
    assert transcript.turns[1].text == "hello world"


def test_a_higher_attempt_without_its_retry_still_starts_over() -> None:
    transcript, changes = _render(_delta(1, 0, "old"), _delta(3, 0, "new"))
    assert isinstance(changes[1], Discarded) and changes[1].chars == 3
    assert transcript.turns[1].text == "new"


def test_a_mismatch_is_reported_and_the_result_shown() -> None:
    transcript, changes = _render(_delta(1, 0, "partial"), _complete(1, "the whole text"))
    assert isinstance(changes[-1], Completed) and not changes[-1].matched
    assert transcript.turns[1].text == "the whole text"


def test_a_snapshot_resumes_exactly() -> None:
    transcript, _ = _render(_delta(1, 0, "one "), _retry(2), _delta(2, 0, "two "))
    again = Transcript.restore(transcript.snapshot())
    assert isinstance(again.apply(*_delta(1, 1, "late")), Fenced)  # still fenced after a restart
    again.apply(*_delta(2, 1, "three"))
    assert again.turns[1].text == "two three" and again.turns[1].fenced == 1


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 4001])
def test_a_prompt_out_of_bounds_is_refused_saying_what_is_accepted(prompt: str) -> None:
    with pytest.raises(ValueError, match="use 1 to 4000 characters"):
        check_prompt(prompt)


def test_the_api_key_is_not_in_the_settings_repr() -> None:
    assert "sk-secret" not in repr(Settings.from_env({"LLM_API_KEY": "sk-secret"}))
