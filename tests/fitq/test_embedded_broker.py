"""The embedded broker's transport: a message appears whole or not at all. kombu's own
filesystem transport wrote in place, and a polling worker read a half-written message
(``JSONDecodeError``), logged "Unrecoverable error" and exited."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from kombu import Connection
from kombu.transport import filesystem
from kombu.transport.virtual import Channel

from fitq.embedded_broker import Transport
from fitq.queues import celery_config
from fitq.settings import Settings

PAYLOAD_BYTES = 200_000  # a large message takes several write calls: a wide window to read


def channel(folder: Path, transport: type = Transport) -> tuple[Connection, Channel]:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    connection = Connection("filesystem://", transport=transport, transport_options=options)
    return connection, connection.default_channel


def test_celery_uses_it_for_the_embedded_broker(tmp_path: Path) -> None:
    from celery import Celery

    app = Celery("t")
    app.conf.update(celery_config(Settings(data_dir=tmp_path)))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)


def test_a_message_being_written_is_invisible_to_readers(tmp_path: Path) -> None:
    connection, chan = channel(tmp_path)
    with connection:
        # What a writer leaves while it writes: the final name's ".partial" sibling.
        (tmp_path / "1_abc.cpu.msg.partial").write_bytes(b'{"body": "half')
        assert chan._size("cpu") == 0
        with pytest.raises(filesystem.Empty):
            chan._get("cpu")
        chan._put("cpu", {"body": "whole"})
        assert chan._size("cpu") == 1
        assert chan._get("cpu") == {"body": "whole"}
        assert [p.name for p in tmp_path.iterdir()] == ["1_abc.cpu.msg.partial"]


def _write_many(folder: str, writer: int, count: int) -> None:
    connection, chan = channel(Path(folder))
    with connection:
        for index in range(count):
            chan._put("cpu", {"writer": writer, "index": index, "pad": "x" * PAYLOAD_BYTES})


def test_concurrent_writers_never_hand_a_reader_a_partial_message(tmp_path: Path) -> None:
    writers, each = 3, 60
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_write_many, args=(str(tmp_path), w, each)) for w in range(writers)
    ]
    for process in processes:
        process.start()
    seen: set[tuple[int, int]] = set()
    connection, chan = channel(tmp_path, filesystem.Transport)  # kombu's own reader
    with connection:
        while len(seen) < writers * each:
            try:
                message = chan._get("cpu")  # raised JSONDecodeError on a partial file before
            except filesystem.Empty:
                assert any(p.is_alive() for p in processes) or chan._size("cpu"), seen
                continue
            assert len(message["pad"]) == PAYLOAD_BYTES
            seen.add((message["writer"], message["index"]))
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert seen == {(w, i) for w in range(writers) for i in range(each)}
