"""The llm-worker: the conversation workflow and its model activity, on their own task queue.

Only this worker runs ``ConversationWorkflow`` (it is not in
``services.workflows.ALL``), so killing it mid-answer disturbs no other
scenario; several may share the queue, and a retried answer runs on
whichever is up.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from services.llm.activity import Completions, Model, Publishing
from services.llm.offline import OfflineModel
from services.llm.remote import RemoteModel
from services.shared.settings import Settings
from services.workflows.conversation import ConversationWorkflow


def choose_model(settings: Settings) -> Model:
    """The model LLM_BASE_URL names, or the offline one when it is unset."""
    if settings.llm_base_url is None:
        return OfflineModel(settings.llm_offline_tokens_per_second)
    return RemoteModel(settings.llm_base_url, settings.llm_api_key, settings.llm_model)


def build_llm_worker(
    client: Client,
    settings: Settings,
    *,
    model: Model | None = None,
    publishing: Publishing | None = None,
) -> Worker:
    """The llm-worker on LLM_TASK_QUEUE; the bench passes its own publishing policy."""
    completions = Completions(
        settings,
        model or choose_model(settings),
        publishing or Publishing.from_settings(settings),
    )
    return Worker(
        client,
        task_queue=settings.llm_task_queue,
        workflows=[ConversationWorkflow],
        activities=[completions.stream_completion, completions.conversation_config],
        # SIGTERM lets an answer in progress finish for this long; past it the
        # attempt is cut off and retried elsewhere.
        graceful_shutdown_timeout=timedelta(seconds=10),
        max_cached_workflows=settings.worker_max_cached_workflows,  # as services.worker
    )
