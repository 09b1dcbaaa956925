"""The embedded default's broker: kombu's filesystem transport, serving a worker's queues in order.

kombu's virtual transports poll the queues a worker consumes in turn (a fair cycle), so a worker of
the live and background lanes (docs/architecture.md, "Fair scheduling") would take a background
message every other time while live ones wait. This channel asks the queues in sorted order on every
poll and takes the first message found: the live queue (`browser`) sorts before its background queue
(`browser-background`, the same name plus a suffix), so a free slot always takes a live job first.
Redis gets the same order from kombu's own `queue_order_strategy: "sorted"` (portal/settings.py).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import filesystem


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu writes to these folders but never creates them: a fresh var dir (a test run, a first
        # `manage.py` that enqueues before any worker started) would fail with FileNotFoundError.
        for folder in (self.data_folder_in, self.data_folder_out, self.processed_folder, self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def _poll(self, cycle: Any, callback: Callable[..., Any], timeout: float | None = None) -> Any:
        for queue in sorted(self._active_queues):
            try:
                return self._get_and_deliver(queue, callback)
            except Empty:
                continue
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
