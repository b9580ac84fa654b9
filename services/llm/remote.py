"""Any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp) through the ``openai`` package.

The client's own retries are off (``max_retries=0``): Temporal retries the
activity, with backoff, and the stream shows each attempt. Errors are sorted
here: an answer that retrying cannot change (no such model, a refused key, a
bad request) becomes a non-retryable ApplicationError carrying the server's
own message; a passing fault (rate limit, 5xx, timeout, no connection) a
retryable one, so the turn is tried again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from temporalio.exceptions import ApplicationError

from services.shared.models import (
    MODEL_BAD_REQUEST,
    MODEL_KEY_REFUSED,
    MODEL_NOT_FOUND,
    CompletionInput,
)

SYSTEM_PROMPT = (
    "You are a concise assistant in a demo of Temporal Workflow Streams. "
    "Answer in a few sentences over a few short lines."
)
TIMEOUT_SECONDS = 60.0  # per request, and between two chunks of a stream
NO_KEY = "no-key"  # local servers (Ollama, llama.cpp) want none, the client wants one


class RemoteModel:
    """Streaming chat completions from ``model`` at ``base_url``."""

    def __init__(self, base_url: str, api_key: str | None, model: str) -> None:
        self.name = model
        self.base_url = base_url
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, max_retries=0, timeout=TIMEOUT_SECONDS
        )

    async def stream(self, request: CompletionInput, attempt: int) -> AsyncIterator[str]:
        """The answer's text, chunk by chunk as the server sends it."""
        messages: list[Any] = [{"role": "system", "content": SYSTEM_PROMPT}]
        for exchange in request.history:
            messages.append({"role": "user", "content": exchange.prompt})
            messages.append({"role": "assistant", "content": exchange.answer})
        messages.append({"role": "user", "content": request.prompt})
        try:
            chunks = await self.client.chat.completions.create(
                model=self.name, messages=messages, stream=True
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.APIError as err:
            raise sorted_error(err) from err


def server_message(err: openai.APIError) -> str:
    """The server's own words: its error object's message when it sent one."""
    body = err.body
    said = body.get("message") if isinstance(body, dict) else None
    text = str(said) if said else err.message
    status = getattr(err, "status_code", None)
    return " ".join(f"{status} {text}".split() if status else text.split())


def sorted_error(err: openai.APIError) -> ApplicationError:
    """The ApplicationError Temporal should see: non-retryable only when retrying cannot help."""
    message = server_message(err)
    permanent = {
        openai.NotFoundError: MODEL_NOT_FOUND,
        openai.AuthenticationError: MODEL_KEY_REFUSED,
        openai.PermissionDeniedError: MODEL_KEY_REFUSED,
        openai.BadRequestError: MODEL_BAD_REQUEST,
        openai.UnprocessableEntityError: MODEL_BAD_REQUEST,
    }
    for kind, error_type in permanent.items():
        if isinstance(err, kind):
            return ApplicationError(message, type=error_type, non_retryable=True)
    # Rate limits, 5xx, 408/409, timeouts, lost connections, a stream cut off:
    # the retry policy's backoff decides when to try again.
    return ApplicationError(message, type=f"Model{type(err).__name__}")
