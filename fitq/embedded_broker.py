"""The embedded broker (``fitq serve``'s default): kombu's filesystem transport, made unable
to deliver a partial message.

kombu writes a message file in place, under the name consumers look for, so a worker polling
the folder could read it half-written (``JSONDecodeError`` in kombu), log "Unrecoverable
error" and exit. Here a message is written under a name no consumer matches, then renamed
into place in one step: a reader sees the whole message or nothing. Selected by
``broker_transport`` in ``fitq.queues.celery_config``; only processes that run Celery (the
service and worker extras) import it."""

from __future__ import annotations

import os
import uuid
from contextlib import suppress
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


def message_name(queue: str) -> str:
    """kombu's own naming, which its reader matches (``<ms>_<uuid>.<queue>.msg``, oldest
    first by name)."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    # kombu's filesystem Channel names the second argument ``payload``, its base ``message``.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        final = os.path.join(self.data_folder_out, message_name(queue))
        partial = final + ".partial"  # "<queue>.msg.partial": no consumer of queue reads it
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, final)  # atomic on one filesystem
        except OSError as exc:
            with suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
