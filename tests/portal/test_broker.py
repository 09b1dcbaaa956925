"""The embedded broker (portal/broker.py) creates its folders: a fresh var dir must not fail the
first message with FileNotFoundError."""
from __future__ import annotations

from pathlib import Path

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
