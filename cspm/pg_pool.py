"""A small pool of psycopg connections, shared by the two PostgreSQL stores (kv memory, registry metadata).

psycopg_pool would add a dependency and a background thread for what is a list under a lock: idle
connections are kept between requests (at most `max_idle`), a request takes one or makes one, and a
connection goes back only when it is healthy and idle. One found broken means the server went away,
so the other idle ones are dropped with it (the next request connects afresh). psycopg is never
imported here: the store passes its own `connect`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import psycopg

# TCP keepalives: a server that vanished (a failover, a dropped network) is noticed in about a minute
T = TypeVar("T")
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


class ConnectionPool:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], max_idle: int = 16) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []

    @contextmanager
    def connection(self) -> Iterator[tuple[psycopg.Connection[Any], bool]]:
        """An idle connection (reused: True) or a new one; given back unless it broke or is mid-transaction
        (a request interrupted there must not hand its transaction to the next one)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect()
        try:
            yield conn, reused
        finally:
            if conn.broken or conn.closed:
                self.drop_idle()  # the server went away: its other connections are as dead
                conn.close()
            elif conn.info.transaction_status != conn.info.transaction_status.IDLE:
                conn.close()
            else:
                with self._lock:
                    keep = len(self._idle) < self._max_idle
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()

    def drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def run(self, work: Callable[[Tracked], T], *, operational: type[BaseException], transaction: bool = False,
            snapshot: bool = False) -> T:
        """`work` on a connection (in one transaction when asked; `snapshot`: one REPEATABLE READ READ ONLY
        snapshot for several SELECTs), once more on a new connection when a reused one turned out dead
        before any statement reached the server (`operational`: psycopg's OperationalError). Other
        errors are the caller's to turn into its own."""
        for attempt in (0, 1):
            with self.connection() as (conn, reused):
                tracked = Tracked(conn)
                try:
                    if not (transaction or snapshot):
                        return work(tracked)
                    with conn.transaction():
                        if snapshot:
                            conn.execute(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        return work(tracked)
                except operational:
                    if attempt == 0 and reused and conn.broken and tracked.done == 0:
                        continue
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


class Tracked:
    """A connection that counts the statements that reached the server: a request may be retried on a
    new connection only when none did."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.done = 0

    def run(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(query.encode(), args)  # bytes: psycopg's LiteralString check has no say
        rows = cur.fetchall() if cur.description is not None else []
        self.done += 1
        return rows

    def count(self, query: str, args: tuple[object, ...] = ()) -> int:
        cur = self.conn.execute(query.encode(), args)
        self.done += 1
        return cur.rowcount
