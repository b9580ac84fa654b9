"""A conversation outlives its runs: continue-as-new between turns, every turn exact."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.workflow_streams import PollInput, PollResult

from services.shared.conversation import ask
from tests.llm_support import Reader, assert_every_turn_exact, close, llm_worker

TURNS = 5
POLL_QUERY = "__temporal_workflow_stream_poll"  # the stream's own read of what it retains


def _payload(wire: str) -> Payload:
    payload = Payload()
    payload.ParseFromString(base64.b64decode(wire))
    return payload


async def test_a_conversation_continues_as_new_mid_conversation_with_every_turn_exact(
    client: Client, env: dict[str, str], task_queue: str, tmp_path: Path
) -> None:
    worker = llm_worker(
        {**env, "LLM_TASK_QUEUE": task_queue},
        tmp_path / "llm.log",
        LLM_TURNS_PER_RUN="2",  # lowered: a new run after every second turn
        LLM_HISTORY_TURNS="1",  # and the carried log cut to the last turn
        LLM_OFFLINE_TOKENS_PER_SECOND="400",
    )
    conversation_id = f"talk-{uuid.uuid4().hex[:8]}"
    reader = Reader(client, conversation_id)
    question_ids = [uuid.uuid4().hex for _ in range(TURNS)]

    async def asking(n: int) -> int:
        asked = await ask(
            client,
            conversation_id=conversation_id,
            task_queue=task_queue,
            prompt=f"question {n}",
            question_id=question_ids[n],
        )
        return asked.turn

    # All at once: most wait in the queue, and must survive the runs' hand-overs.
    turns = [await asking(0), *await asyncio.gather(*(asking(n) for n in range(1, TURNS)))]
    assert sorted(turns) == list(range(1, TURNS + 1))
    reader.start()
    await reader.ended(TURNS)
    for turn in range(1, TURNS + 1):
        await reader.ended(turn)
    recorded = await assert_every_turn_exact(client, reader)
    assert sorted(recorded.answers) == list(range(1, TURNS + 1))
    assert recorded.runs >= 3, f"{recorded.runs} runs: it did not continue as new"
    # The carried log was cut before the last turn answered when the run handed
    # over (turn 4; LLM_HISTORY_TURNS=1): a prefix, so the log begins at its
    # `turn` event, and no older turn's question is left in it.
    retained = await client.get_workflow_handle(conversation_id).query(
        POLL_QUERY, PollInput(from_offset=0), result_type=PollResult
    )
    decode = client.data_converter.payload_converter
    kept = [(i.topic, decode.from_payload(_payload(i.data), dict)) for i in retained.items]
    assert retained.items[0].offset > 0 and kept[0][0] == "turn"
    assert kept[0][1]["turn"] == TURNS - 1
    assert sorted(data["turn"] for topic, data in kept if topic == "turn") == [TURNS - 1, TURNS]
    # Asking again with a known id, after the hand-overs, is the same turn.
    assert await asking(1) == turns[1]
    # The model saw the exchange before it: history crossed the runs.
    assert "You asked before" in reader.transcript.turns[TURNS].text
    await close(client, conversation_id)
    await reader.stop()
    assert worker.stop() == 0
