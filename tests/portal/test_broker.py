"""The embedded broker (portal/broker.py) creates its folders: a fresh var dir must not fail the
first message with FileNotFoundError."""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from kombu import Connection


def test_first_message_on_a_fresh_var_dir_creates_the_folders(tmp_path: Path) -> None:
    base = tmp_path / "var" / "broker"  # nothing of it exists yet
    options = {
        "data_folder_in": str(base / "queue"),
        "data_folder_out": str(base / "queue"),
        "processed_folder": str(base / "processed"),
        "control_folder": str(base / "control"),
    }
    with Connection("filesystem://localhost/", transport="portal.broker:Transport",
                    transport_options=options) as connection:
        queue = connection.SimpleQueue("browser")
        queue.put({"job": "1"})
        message = queue.get(timeout=2)
        assert message.payload == {"job": "1"}
        message.ack()
        queue.close()
    assert all((base / name).is_dir() for name in ("queue", "processed", "control"))


def _options(base: Path) -> dict[str, str]:
    return {
        "data_folder_in": str(base / "queue"),
        "data_folder_out": str(base / "queue"),
        "processed_folder": str(base / "processed"),
        "control_folder": str(base / "control"),
    }


def test_a_consumer_never_sees_a_message_before_it_is_written_whole(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """kombu's own transport creates the file, then writes it: a consumer listing the folder in
    between took an empty file and its worker died ("Unrecoverable error: JSONDecodeError")."""
    from kombu.transport import filesystem

    base = tmp_path / "broker"
    seen_while_writing: list[list[str]] = []
    real_dumps = filesystem.dumps

    def dumps_and_look(payload):  # type: ignore[no-untyped-def]
        # While the message is being written, what would a consumer of the queue find?
        seen_while_writing.append([n for n in os.listdir(base / "queue") if n.partition(".")[2] == "atomic.msg"])
        return real_dumps(payload)

    with Connection("filesystem://localhost/", transport="portal.broker:Transport",
                    transport_options=_options(base)) as connection:
        monkeypatch.setattr("portal.broker.dumps", dumps_and_look)
        # A queue name of its own: kombu keeps the bindings it declared in memory, per transport class.
        queue = connection.SimpleQueue("atomic")
        queue.put({"job": "1"})
        assert seen_while_writing == [[]]  # nothing visible until the whole message is in place
        assert [n for n in os.listdir(base / "queue") if n.startswith(".")] == []  # no partial file left
        message = queue.get(timeout=2)
        assert message.payload == {"job": "1"}
        message.ack()
        queue.close()


def test_an_unreadable_message_is_dropped_and_the_next_one_delivered(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The module's logger itself: the suite's logging configuration may not propagate to caplog.
    logger = mock.Mock()
    monkeypatch.setattr("portal.broker.logger", logger)
    base = tmp_path / "broker"
    with Connection("filesystem://localhost/", transport="portal.broker:Transport",
                    transport_options=_options(base)) as connection:
        queue = connection.SimpleQueue("unreadable")
        (base / "queue" / "0_empty.unreadable.msg").write_bytes(b"")  # as an interrupted write left it (sorts first)
        queue.put({"job": "2"})
        message = queue.get(timeout=2)
        assert message.payload == {"job": "2"}
        message.ack()
        queue.close()
    logger.error.assert_called_once_with("broker: dropped an unreadable message of queue %s", "unreadable")
