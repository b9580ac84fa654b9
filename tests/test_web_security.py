"""The web's defences, from outside: the Host allow-list, the headers, same-origin writes, caps.

A DNS-rebinding page makes a browser send the attacker's host name; it is
refused before any route. Every response forbids framing and sniffing.
Writes are same-origin only. One client cannot take every slot, and the
server's own caps answer 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from services.shared.models import HubInput
from services.shared.settings import Settings
from services.web.guard import SECURITY_HEADERS
from services.workflows import HubWorkflow
from testkit.sse import SseEvent
from testkit.waiting import eventually
from tests.test_web_support import Web, connection, publish, running_web, viewer

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_host_not_allowed_is_refused_before_any_route(
    client: Client, settings: Settings
) -> None:
    async with running_web(client, settings) as web:
        rebound = await web.http.get("/api/config", headers={"Host": "attacker.example"})
        rebound_write = await web.http.post(
            "/api/orders",
            json={},
            headers={"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000"},
        )
        local = await web.http.get("/api/config", headers={"Host": "localhost:1234"})
        loopback = await web.http.get("/api/config")  # Host: 127.0.0.1:<port>
    async with running_web(client, settings, web_allowed_hosts=("dash.example",)) as web:
        named = await web.http.get("/api/config", headers={"Host": "dash.example"})
        not_named = await web.http.get("/api/config")
    for refused in (rebound, rebound_write, not_named):
        assert refused.status_code == 421, refused.text
        assert "is not served here; WEB_ALLOWED_HOSTS is" in refused.json()["detail"]
    assert (local.status_code, loopback.status_code, named.status_code) == (200, 200, 200)


async def test_every_response_carries_the_security_headers(
    client: Client, settings: Settings
) -> None:
    hub_id = await _hub(client, settings, "headers")
    async with running_web(client, settings) as web:
        answers = [
            await web.http.get("/"),
            await web.http.get("/api/config"),
            await web.http.get("/api/no-such-route"),
            await web.http.get("/streams/no-such-workflow"),
            await web.http.get("/events"),
            await web.http.get("/", headers={"Host": "attacker.example"}),
            await web.http.post("/api/orders", content="{}"),
        ]
        async with web.http.stream("GET", f"/streams/{hub_id}") as sse:
            answers.append(sse)
        async with web.http.stream("GET", "/events", params={"follow": hub_id}) as sse:
            answers.append(sse)
    assert [a.status_code for a in answers] == [200, 200, 404, 404, 400, 421, 415, 200, 200]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
    csp = SECURITY_HEADERS["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_writes_are_same_origin_only(client: Client, settings: Settings) -> None:
    async with running_web(client, settings) as web:
        host = web.url.removeprefix("http://")
        foreign = await web.http.post(
            "/api/orders", json={}, headers={"Origin": "http://attacker.example"}
        )
        other_port = await web.http.post(
            "/api/orders", json={}, headers={"Origin": "http://127.0.0.1:1"}
        )
        cross_site = await web.http.post(
            "/api/orders", json={}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        same_site = await web.http.post(
            "/api/ticker", json={}, headers={"Sec-Fetch-Site": "same-site"}
        )
        same_origin = await web.http.post(
            "/api/orders",
            json={},
            headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
        )
    assert (foreign.status_code, other_port.status_code) == (403, 403)
    assert "is not this dashboard" in foreign.json()["detail"]
    assert (cross_site.status_code, same_site.status_code) == (403, 403)
    assert "Sec-Fetch-Site 'cross-site' refused" in cross_site.json()["detail"]
    assert same_origin.status_code == 201, same_origin.text


async def test_one_client_cannot_take_every_slot(client: Client, settings: Settings) -> None:
    first, second = await _hub(client, settings, "c1"), await _hub(client, settings, "c2")
    async with running_web(
        client, settings, web_client_max_viewers=2, web_client_max_streams=1
    ) as web:
        async with viewer(web, first) as one, connection(web, first) as two:
            await anext(one), await anext(two)  # both hellos: two connections held
            third = await web.http.get(f"/streams/{first}")
            third_events = await web.http.get("/events", params={"follow": first})
        await eventually(lambda: _released(web), what="the two connections to be let go")
        async with connection(web, first, second) as events:
            refused = await _event(events, "refused")
            other = await web.http.get(f"/streams/{second}")
    assert (third.status_code, third.headers["retry-after"]) == (429, "5")
    assert "WEB_CLIENT_MAX_VIEWERS is 2" in third.json()["detail"]
    assert third_events.status_code == 429
    assert refused.json()["stream"] == second
    assert "WEB_CLIENT_MAX_STREAMS is 1" in refused.json()["why"]
    assert other.status_code == 429
    assert "WEB_CLIENT_MAX_STREAMS is 1" in other.json()["detail"]
    for hub_id in (first, second):
        await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_past_the_stream_cap_a_new_stream_gets_503_with_retry_after(
    client: Client, settings: Settings
) -> None:
    first, second = await _hub(client, settings, "s1"), await _hub(client, settings, "s2")
    async with running_web(client, settings, web_max_streams=1) as web:
        async with viewer(web, first) as events:
            await anext(events)  # the one stream allowed is open, and held
            full = await web.http.get(f"/streams/{second}")
        await eventually(lambda: _released(web), what="the viewer to be let go")
        # Once its viewer left, the idle stream makes room for the next.
        async with viewer(web, second) as events:
            hello = await anext(events)
    assert (full.status_code, full.headers["retry-after"]) == (503, "5")
    assert "WEB_MAX_STREAMS is 1" in full.json()["detail"]
    assert hello.json()["workflow_id"] == second
    for hub_id in (first, second):
        await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_heartbeats_off_sends_no_comment_lines(client: Client, settings: Settings) -> None:
    """WEB_HEARTBEAT_SECONDS=0: beside a server that beats every 0.2 s, this one stays silent."""
    hub_id = await _hub(client, settings, "quiet")
    async with (
        running_web(client, settings, web_heartbeat_seconds=0) as quiet,
        running_web(client, settings, web_heartbeat_seconds=0.2) as beating,
        _lines(quiet, hub_id) as silent,
        _lines(beating, hub_id) as beats,
    ):
        reading = asyncio.create_task(_collect(silent))
        # Wait on the other server's heartbeats: 5 of them is a full second of quiet here.
        comments = 0
        async for line in beats:
            comments += line.startswith(":")
            if comments == 5:
                break
        await publish(client, hub_id, range(1))
        quiet_lines = await reading
    assert [line for line in quiet_lines if line.startswith(":")] == []
    assert any(line.startswith("event: news") for line in quiet_lines)
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


# -- helpers --------------------------------------------------------------------
async def _hub(client: Client, settings: Settings, tag: str) -> str:
    hub_id = f"hub-{tag}-{settings.task_queue}"
    await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    return hub_id


async def _released(web: Web) -> bool:
    return bool((await web.http.get("/api/status")).json()["viewers"] == 0)


async def _event(events: AsyncIterator[SseEvent], name: str) -> SseEvent:
    async for event in events:
        if event.event == name:
            return event
    raise AssertionError(f"the connection closed before a {name!r} event")


def _lines(web: Web, hub_id: str) -> _Lines:
    return _Lines(web, hub_id)


class _Lines:
    """The raw lines of one /streams response."""

    def __init__(self, web: Web, hub_id: str) -> None:
        self._stream = web.http.stream("GET", f"/streams/{hub_id}")

    async def __aenter__(self) -> AsyncIterator[str]:
        response = await self._stream.__aenter__()
        return response.aiter_lines()

    async def __aexit__(self, *exc: object) -> None:
        await self._stream.__aexit__(None, None, None)


async def _collect(lines: AsyncIterator[str]) -> list[str]:
    """Lines until the first event's data (the news item) has arrived."""
    got: list[str] = []
    async for line in lines:
        got.append(line)
        if line.startswith("data:") and got[-2:-1] == ["event: news"]:
            return got
    return got
