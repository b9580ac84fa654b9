"""ticker-fast: keeps up with the ticker and sees every offset in order."""

from __future__ import annotations

from services.shared.connect import connect
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.shared.ticker import follow_ticker


async def main(settings: Settings) -> None:
    await follow_ticker(await connect(settings), settings, delay=0)


if __name__ == "__main__":
    run_service("ticker-fast", main, one_shot=True)
