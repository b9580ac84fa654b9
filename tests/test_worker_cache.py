"""The worker keeps at most WORKER_MAX_CACHED_WORKFLOWS runs in memory, whatever stays open.

Every open hub holds its log in the worker while it is cached; past the
bound the least recently used is evicted and replayed from its history when
it is next asked. Read from the worker's own metrics (Core's sticky cache
gauge and its forced evictions), on the real dev server. Whatever the SDK
cannot evict, no bound holds: the worker exits on it (services/shared/evictions.py).
"""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.runtime import BufferedMetricUpdate, MetricBuffer, Runtime, TelemetryConfig

from services.shared.evictions import stuck_evictions
from services.shared.models import HubInput
from services.shared.settings import Settings
from services.worker import build_worker
from services.workflows import HubWorkflow
from testkit.devserver import DevServer

CACHE = 2
HUBS = 5


def test_the_default_bounds_the_cache_below_the_sdks() -> None:
    assert Settings().worker_max_cached_workflows < 1000  # the SDK's default
    assert Settings.from_env({"WORKER_MAX_CACHED_WORKFLOWS": "7"}).worker_max_cached_workflows == 7


async def test_open_hubs_beyond_the_bound_are_evicted_and_still_answer(server: DevServer) -> None:
    metrics = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    client = await Client.connect(server.address, runtime=runtime)
    task_queue = f"cache-{uuid.uuid4().hex[:6]}"
    updates: list[BufferedMetricUpdate] = []
    worker = build_worker(client, task_queue, max_cached_workflows=CACHE)
    async with worker:
        hubs = [
            await client.start_workflow(
                HubWorkflow.run, HubInput(), id=f"{task_queue}-{n}", task_queue=task_queue
            )
            for n in range(HUBS)
        ]
        # Twice round: each query needs its hub in the cache, so by the
        # second round every hub has been evicted and replayed at least once.
        for _ in range(2):
            for hub in hubs:
                assert await WorkflowStreamClient.create(client, hub.id).get_offset() == 0
                updates += metrics.retrieve_updates()
        for hub in hubs:
            await hub.signal(HubWorkflow.close)
            await hub.result()
        # What the worker would exit on (services/shared/evictions.py): none here,
        # and the SDK's counter behind it is still where it is read.
        assert stuck_evictions(worker) == 0
    updates += metrics.retrieve_updates()

    sizes = [int(u.value) for u in updates if u.metric.name.endswith("sticky_cache_size")]
    forced = "sticky_cache_total_forced_eviction"
    evicted = sum(int(u.value) for u in updates if u.metric.name.endswith(forced))
    assert sizes, "the worker reported no cache size"
    assert max(sizes) <= CACHE
    assert max(sizes) == CACHE  # it did fill up: the bound, not the load, held it
    assert evicted >= HUBS  # every hub was pushed out at least once along the way
