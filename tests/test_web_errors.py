"""An outage, an answer and a bug are three different things, and the web says which.

Temporal not answering is 503 with ``Retry-After`` (a dev server of the
test's own, stopped under the web); Temporal's answers (an invalid run id, a
namespace that does not exist) are reported with the server's words and no
``Retry-After``; a bug in the web is a 500 whose traceback is in the log.
"""

from __future__ import annotations

import contextlib

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

from services.shared.connect import runtime
from services.shared.models import HubInput
from services.shared.settings import Settings
from services.web import tokens
from services.web.chain import Position
from services.web.registry import Registry
from services.workflows import HubWorkflow
from testkit.devserver import dev_server, free_port
from tests.test_web_support import connection, running_web

JSON = {"Content-Type": "application/json"}


async def test_while_temporal_is_down_every_route_answers_503_with_retry_after(
    settings: Settings,
) -> None:
    port = free_port()
    async with contextlib.AsyncExitStack() as server:
        running = await server.enter_async_context(dev_server(port=port))
        client = running.client
        await client.start_workflow(
            HubWorkflow.run, HubInput(), id="hub-down", task_queue=settings.task_queue
        )
        async with running_web(client, settings) as web:
            await server.aclose()  # Temporal goes away; the web stays up
            latest = await web.http.get("/api/streams/hub-down")
            async with web.http.stream("GET", "/streams/hub-down") as stream:
                await stream.aread()  # an error's body; a stream would not end
            order = await web.http.post("/api/orders", json={})
            async with connection(web, "hub-down") as events:
                hello = await anext(events)
                state = await anext(events)
    for answer in (latest, stream, order):
        assert (answer.status_code, answer.headers.get("retry-after")) == (503, "5"), answer.text
        assert "Temporal is not answering" in answer.text
    assert hello.json()["streams"]["hub-down"]["state"] == "reconnecting"
    assert (state.event, state.json()["state"]) == ("state", "reconnecting")
    assert state.json()["detail"].startswith("Temporal is not answering")


@pytest.mark.usefixtures("worker")
async def test_temporals_answers_are_reported_as_what_they_are(
    client: Client, temporal_address: str, settings: Settings
) -> None:
    hub_id = f"hub-answers-{settings.task_queue}"
    await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    elsewhere = await Client.connect(temporal_address, namespace="no-such-ns", runtime=runtime())
    async with running_web(client, settings) as web:
        invalid = await web.http.get(f"/streams/{hub_id}", headers={"Last-Event-ID": "abc:1"})
        async with connection(web, hub_id, after=_token(hub_id, "abc", 2)) as events:
            await anext(events)  # hello
            refused = await anext(events)
    async with running_web(elsewhere, settings) as web:
        no_namespace = await web.http.get("/api/streams/x")
        no_order = await web.http.post("/api/orders", json={})
    assert invalid.status_code == 400
    assert "Temporal refused (INVALID_ARGUMENT)" in invalid.json()["detail"]
    assert "retry-after" not in invalid.headers
    assert refused.event == "refused"
    assert "INVALID_ARGUMENT" in refused.json()["why"]
    for answer in (no_namespace, no_order):
        assert answer.status_code == 502, answer.text
        assert "Temporal refused (NOT_FOUND)" in answer.json()["detail"]
        assert "no-such-ns" in answer.json()["detail"]
        assert "retry-after" not in answer.headers
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_a_bug_is_a_500_with_its_traceback_in_the_log(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Registry, workflow_id: str) -> None:
        raise KeyError(workflow_id)  # what a bug in the registry would raise

    monkeypatch.setattr(Registry, "latest", broken)
    async with running_web(client, settings) as web:
        with capture_logs() as logs:
            answer = await web.http.get("/api/streams/some-id")
    assert answer.status_code == 500
    assert "retry-after" not in answer.headers
    assert "its log has the traceback" in answer.json()["detail"]
    assert answer.headers["x-frame-options"] == "DENY"
    failed = [e for e in logs if e["event"] == "request failed"]
    assert failed and failed[0]["log_level"] == "error" and failed[0]["exc_info"]
    assert failed[0]["path"] == "/api/streams/some-id"


def _token(workflow_id: str, chain: str, offset: int) -> str:
    return tokens.encode({workflow_id: Position(chain, offset)})
