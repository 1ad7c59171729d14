"""WAL checkpoints of the SQLite store, in a thread of their own at the lowest priority.

A checkpoint copies the WAL's pages into the database file and syncs it: several
milliseconds of CPU and I/O that no request waits for. The writer's connection
checkpoints only past a large bound on the WAL (every write queued behind that
commit would wait); the store asks this thread instead, every so many writes. The daemon's threads share the cores with the
reactor thread (one core, when pinned), and a checkpoint running beside it at the
same priority took the CPU from it in slices of milliseconds: every request the
reactor was handling then waited. On Linux the thread lowers its own scheduling
priority to nice 19, so the reactor and the writer run first and the checkpoint
uses the time they leave; with the daemon at 35 % load that is most of it.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callnowd.store.sqlite_migrate import connect_with

#: The niceness the checkpoint thread gives itself (the lowest priority).
CHECKPOINT_NICENESS = 19


def lower_thread_priority(niceness: int = CHECKPOINT_NICENESS) -> bool:
    """Give the calling thread the scheduling priority ``niceness``, on Linux.

    Linux keeps a niceness per thread (``setpriority`` with the thread's id); other
    systems would apply it to a whole process, so they are left alone. Raising
    one's own niceness needs no privilege.

    Returns:
        Whether the priority was changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except OSError:
        return False
    return True


def checkpoint(connection: sqlite3.Connection) -> None:
    """Copy what can be copied of the WAL, without waiting for readers or writers."""
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class Checkpointer:
    """Runs one WAL checkpoint at a time on a low-priority thread of its own.

    Args:
        reactor: delivers the outcome (``callFromThread``).
        path: the database file.
        setup: prepares the thread's connection (pragmas), in its thread.
        done: called on the reactor thread after each checkpoint, with the
            exception it raised (usually an ``sqlite3.Error``) or None.
    """

    def __init__(
        self,
        reactor: Any,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        done: Callable[[Exception | None], None],
    ) -> None:
        self._reactor = reactor
        self._path = path
        self._setup = setup
        self._done = done
        self._queue: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.running = False  # a checkpoint is asked for or in progress
        self.native_id: int | None = None  # the thread's id, once it runs

    def start(self) -> bool:
        """Start a checkpoint unless one is running; whether one was started."""
        if self.running:
            return False
        self.running = True
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop,
                name=f"sqlite-checkpoint {self._path.name}",
                daemon=True,
            )
            self._thread.start()
        self._queue.put(True)
        return True

    def stop(self) -> None:
        """End the thread after its checkpoint; blocking, call when none runs."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(False)
            thread.join()

    def _finished(self, error: Exception | None) -> None:
        self.running = False
        self._done(error)

    # -- the checkpoint thread ---------------------------------------------------

    def _loop(self) -> None:
        self.native_id = threading.get_native_id()
        lower_thread_priority()
        connection: sqlite3.Connection | None = None
        try:
            while self._queue.get():
                error: Exception | None = None
                try:
                    if connection is None:
                        connection = self._connect()
                    checkpoint(connection)
                except Exception as e:  # reported; the next checkpoint tries again
                    error = e
                self._reactor.callFromThread(self._finished, error)
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        """A connection set up by ``setup``; none is kept when that fails."""
        return connect_with(self._path, self._setup)
