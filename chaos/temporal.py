"""chaos-temporal: restart the Temporal server (volume kept) mid-stream.

The subscriber and a ticker subscriber are reading when the server goes
away. Each must reconnect by itself (same container, no restart by Compose),
and the subscriber's ledger must still have no gap and no repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chaos.compose import ComposeSubscriber, OneOff, compose, started_at, wait_healthy
from chaos.subscriber import audit_ledger, wait_for

LONG_RUNNING = ("worker", "subscriber")


def chaos_temporal(say: Callable[[str], None]) -> bool:
    """Restart temporal under load; print and return the verdict."""
    subscriber = ComposeSubscriber()
    wait_for(
        subscriber,
        lambda r: any(x["kind"] == "event" for x in r),
        what="subscriber events",
        timeout=120,
    )
    before = {service: started_at(service) for service in LONG_RUNNING}
    # A ticker that outlives the restart, keeping enough ticks that a fast
    # reader who reconnects in time misses none.
    ticker = OneOff(
        "ticker-fast",
        TICKER_WORKFLOW_ID=f"chaos-ticker-{int(time.time())}",
        TICKER_TICKS="45",
        TICKER_KEEP="40",
    )
    try:
        ticker.wait_for("tick")
        say("subscriber and ticker-fast are mid-stream; restarting temporal")
        restarted = time.monotonic()
        compose("restart", "temporal")
        healthy = wait_healthy("temporal")
        say(
            f"temporal is healthy again {time.monotonic() - restarted:.1f} s after the restart "
            f"began ({healthy:.1f} s waiting for health)"
        )
        seen = len(subscriber.read_ledger().splitlines())
        wait_for(
            subscriber,
            lambda r: len(r) > seen and r[-1]["kind"] == "event",
            what="a subscriber event after the restart",
            timeout=120,
        )
        code = ticker.exit_code()
        ticks = [line["offset"] for line in ticker.logs() if line["event"] == "tick"]
    finally:
        ticker.remove()
    after = {service: started_at(service) for service in LONG_RUNNING}
    same = [s for s in LONG_RUNNING if before[s] == after[s]]
    result = audit_ledger(subscriber)
    gapless = ticks == list(range(45))
    say(
        f"reconnected in place (no container restart): {same}; ticker-fast exit={code}, "
        f"ticks 0..{ticks[-1] if ticks else '-'} gapless={gapless}"
    )
    ok = result.ok and code == 0 and gapless and same == list(LONG_RUNNING)
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: subscriber events={result.events} "
        f"missing={len(result.missing)} repeated={len(result.repeated)}; "
        f"ticker complete={gapless}; services reconnected in place={len(same)}/{len(LONG_RUNNING)}",
        flush=True,
    )
    return ok
