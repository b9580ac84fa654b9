"""The built-in model: answers with no key and no network, paced like a real one.

Each attempt writes different text (the sentences are drawn with a seed of
prompt, turn and attempt), so a reader that glued attempt 1's partial answer
to attempt 2's would show something visibly wrong. Tokens come at
``tokens_per_second`` on average, jittered, with a longer pause after a
sentence, as a hosted model's do.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator

from services.shared.models import CompletionInput

SENTENCES = (
    "A workflow stream is an append-only log that lives inside the workflow itself.",
    "Every event has an offset, so a reader that reconnects asks for what comes after the "
    "last one it kept.",
    "The activity that talks to the model publishes each chunk of text as it arrives.",
    "Publishing is a signal, so the text is durable the moment the workflow has it.",
    "If the worker dies mid-answer, Temporal runs the activity again on another worker.",
    "A model never repeats itself, so the second attempt is new text, not a continuation.",
    "That is why every delta says which attempt wrote it.",
    "A reader keeps the highest attempt it has seen and ignores the text of older ones.",
    "An attempt that was paused past its heartbeat timeout can wake up and publish late.",
    "Its late deltas still reach the log, but no reader shows them.",
    "The turn's final text is the activity's result, and the workflow publishes it once.",
    "Readers compare what they rendered with that result, byte for byte.",
    "Each poll is an Update, and a run accepts two thousand of them.",
    "So a long conversation continues as new between turns, carrying a bounded history.",
    "Chunks are coalesced into batches, never one signal per token.",
    "A browser that reloads resumes from the offset in its last event id.",
)
OPENINGS = ("Good question.", "Here is the short version.", "In brief.", "Let me explain.")


class OfflineModel:
    """A stand-in for a hosted model that is always there."""

    name = "offline"

    def __init__(self, tokens_per_second: float) -> None:
        self.tokens_per_second = tokens_per_second

    def compose(self, request: CompletionInput, attempt: int) -> str:
        """The whole answer this attempt will stream."""
        rng = random.Random(f"{request.prompt}|{request.turn}|{attempt}")
        # The turn and attempt in the text: a wrong rewind shows two of them.
        opening = OPENINGS[(attempt - 1) % len(OPENINGS)]
        lines = [f"Answer {request.turn}, take {attempt}. {opening}"]
        if request.history:
            lines[0] += f" You asked before: {request.history[-1].prompt[:60]!r}."
        picked = rng.sample(SENTENCES, k=rng.randint(4, 6))
        cut = rng.randint(1, len(picked) - 1)
        lines += [" ".join(picked[:cut]), " ".join(picked[cut:])]
        return "\n".join(lines)

    async def stream(self, request: CompletionInput, attempt: int) -> AsyncIterator[str]:
        """The answer in token-sized chunks, at the model's pace."""
        pace = random.Random()
        for token in re.findall(r"\s*\S{1,6}", self.compose(request, attempt)):
            if self.tokens_per_second > 0:
                delay = pace.uniform(0.5, 1.5) / self.tokens_per_second
                if token.endswith((".", "?", "!", ":")):
                    delay += pace.uniform(0.05, 0.25)  # a model slows at a sentence's end
                await asyncio.sleep(delay)
            yield token
