"""chaos-worker: SIGKILL the worker while an order's charge_card activity runs.

The order must still complete; each status event must reach the order's
subscriber exactly once. The activity's retry is a new publisher, so its
progress arrives again: the subscriber marks those events with their attempt,
and we check that it did.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from chaos.compose import ComposeService, OneOff

STATUSES = ["received", "shipped", "complete"]


def chaos_worker(say: Callable[[str], None], *, down_s: float = 2.0) -> bool:
    """Run one order through a worker kill; print and return the verdict."""
    order_id = f"chaos-order-{uuid.uuid4().hex[:6]}"
    order = OneOff("order-starter", ORDER_ID=order_id, CHARGE_SECONDS="8")
    worker = ComposeService("worker")
    try:
        order.wait_for("charging card...")
        worker.kill()
        killed = time.monotonic()
        say(f"{order_id}: charge_card is running; killed the worker (SIGKILL)")
        time.sleep(down_s)
        worker.start()
        say(f"worker started again after {down_s:.0f} s; waiting for the order to finish")
        code = order.exit_code()
        took = time.monotonic() - killed
        logs = order.logs()
    finally:
        order.remove()
    statuses = [line["event"] for line in logs if line.get("topic") == "status"]
    charging = [line for line in logs if line["event"] == "charging card..."]
    retried = [line for line in charging if line.get("retried")]
    say(
        f"order-starter exit={code}; status events {statuses}; "
        f"'charging card...' {len(charging)}x, {len(retried)} marked retried "
        f"(attempts {[line.get('attempt', 1) for line in charging]}); "
        f"completed {took:.1f} s after the kill"
    )
    ok = code == 0 and statuses == STATUSES and len(retried) >= 1
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: order completed={code == 0} "
        f"status exactly once={statuses == STATUSES} retry marked={len(retried) >= 1} "
        f"kill-to-complete={took:.1f}s",
        flush=True,
    )
    return ok
