"""chaos-llm: SIGKILL the llm-worker mid-answer, keep it down, start it again.

We ask a question in a conversation of our own and read its stream here with
the same fencing ``Transcript`` the assistant and the page use. At the first
delta of attempt 1 every llm-worker container is killed, kept down a few
seconds and started again. The answer must then come from a retry (attempt
2 or later, announced on ``retry``), and the text rendered here must equal
the activity's result recorded in the workflow's history, byte for byte.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from chaos.engine import Stack
from services.llm import history
from services.shared.connect import connect
from services.shared.conversation import Completed, Discarded, Transcript, TurnFailed, ask
from services.shared.models import CLOSE_SIGNAL, CONVERSATION_TOPICS, DELTA_TOPIC
from services.shared.settings import Settings
from services.shared.subscriptions import follow

PROMPT = "What happens to a streamed answer when its worker dies?"
TIMEOUT_S = 180.0
KILL_AFTER_CHARS = 80  # a rewind worth seeing, well before the answer's end


async def chaos_llm(
    stack: Stack, settings: Settings, say: Callable[[str], None], *, down_s: float = 4.0
) -> bool:
    """Run one answer through an llm-worker kill; print and return the verdict."""
    client = await connect(settings)
    worker = stack.service("llm-worker")
    conversation_id = f"chaos-llm-{uuid.uuid4().hex[:6]}"
    asked = await ask(
        client,
        conversation_id=conversation_id,
        task_queue=settings.llm_task_queue,
        prompt=PROMPT,
        question_id=uuid.uuid4().hex,
    )
    say(f"{conversation_id}: asked turn {asked.turn}; waiting for the answer to start")
    transcript = Transcript()
    killed: float | None = None
    discarded: list[Discarded] = []
    end: Completed | TurnFailed | None = None
    async with (
        asyncio.timeout(TIMEOUT_S),
        follow(
            client,
            settings,
            conversation_id,
            None,
            CONVERSATION_TOPICS,
            result_type=dict,
            from_offset=asked.start_offset,
        ) as items,
    ):
        async for item in items:
            change = transcript.apply(item.topic, item.data)
            if isinstance(change, Discarded):
                discarded.append(change)
                say(
                    f"attempt {change.attempt} started over: discarded {change.chars} chars "
                    f"of attempt {change.from_attempt} ({change.why})"
                )
            if isinstance(change, Completed | TurnFailed):
                end = change
                break
            shown = len(transcript.turns[asked.turn].text) if asked.turn in transcript.turns else 0
            if killed is None and item.topic == DELTA_TOPIC and shown >= KILL_AFTER_CHARS:
                await asyncio.to_thread(worker.kill)
                killed = time.monotonic()
                say(f"killed the llm-worker (SIGKILL) mid-answer, {shown} chars into attempt 1")
                await asyncio.sleep(down_s)
                await asyncio.to_thread(worker.start)
                say(f"llm-worker started again after {down_s:.0f} s")
    await client.get_workflow_handle(conversation_id).signal(CLOSE_SIGNAL)
    return _verdict(
        await history.read(client, conversation_id),
        asked.turn,
        end,
        discarded,
        say,
        took=time.monotonic() - (killed or time.monotonic()),
    )


def _verdict(
    recorded: history.Conversation,
    turn: int,
    end: Completed | TurnFailed | None,
    discarded: list[Discarded],
    say: Callable[[str], None],
    *,
    took: float,
) -> bool:
    result = recorded.answers.get(turn)
    completed = isinstance(end, Completed)
    exact = (
        isinstance(end, Completed) and result is not None and end.shown == result.text == end.text
    )
    retried = bool(discarded) and result is not None and result.attempt >= 2
    if isinstance(end, TurnFailed):
        say(f"turn {turn} failed: {end.error}")
    if result is not None:
        say(
            f"result: {len(result.text)} chars from attempt {result.attempt}; "
            f"rendered here: {len(end.shown) if isinstance(end, Completed) else 0} chars"
        )
    ok = completed and exact and retried
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: answer completed={completed} retry seen={retried} "
        f"rendered text == result={exact} kill-to-complete={took:.1f}s",
        flush=True,
    )
    return ok
