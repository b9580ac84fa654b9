"""ticker-slow: dawdles over each tick, falls behind truncation, reports the jumps."""

from __future__ import annotations

from services.shared.connect import connect
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.shared.ticker import follow_ticker


async def main(settings: Settings) -> None:
    await follow_ticker(await connect(settings), settings, delay=settings.ticker_slow_delay_seconds)


if __name__ == "__main__":
    run_service("ticker-slow", main, one_shot=True)
