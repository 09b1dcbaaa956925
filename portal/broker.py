"""The embedded default's broker: kombu's filesystem transport, serving a worker's queues in order.

kombu's virtual transports poll the queues a worker consumes in turn (a fair cycle), so a worker of
the live and background lanes (docs/architecture.md, "Fair scheduling") would take a background
message every other time while live ones wait. This channel asks the queues in sorted order on every
poll and takes the first message found: the live queue (`browser`) sorts before its background queue
(`browser-background`, the same name plus a suffix), so a free slot always takes a live job first.
Redis gets the same order from kombu's own `queue_order_strategy: "sorted"` (portal/settings.py).

It also writes each message whole before any consumer can see it: kombu creates the message file and
fills it afterwards, and a worker that took the file in between read nothing and stopped with
"Unrecoverable error: JSONDecodeError". An unreadable message (one written that way before) is logged
and dropped instead of stopping the worker; the dispatcher sends its job again.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu writes to these folders but never creates them: a fresh var dir (a test run, a first
        # `manage.py` that enqueues before any worker started) would fail with FileNotFoundError.
        for folder in (self.data_folder_in, self.data_folder_out, self.processed_folder, self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put `payload` on `queue`: written under a name no reader takes (a leading dot and a suffix,
        so it is not "<…>.<queue>.msg"), then renamed into place, which is atomic within a folder."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        """The next readable message of `queue` (kombu moves each file away before reading it, so an
        unreadable one is gone once skipped); Empty when there is none."""
        while True:
            try:
                return super()._get(queue)
            except ValueError:  # JSONDecodeError: an empty or partial file
                logger.error("broker: dropped an unreadable message of queue %s", queue)

    def _poll(self, cycle: Any, callback: Callable[..., Any], timeout: float | None = None) -> Any:
        for queue in sorted(self._active_queues):
            try:
                return self._get_and_deliver(queue, callback)
            except Empty:
                continue
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
