"""The HTTP protocol `patronus serve` runs: uvicorn's h11 protocol with a deadline for the request head.

uvicorn closes idle keep-alive connections but not one that sends its request line and headers a byte at a time
(slowloris): such a connection is closed once `header_timeout_s` pass without a complete request head.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024  # h11_max_incomplete_event_size: a request head larger than this is refused


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_generation = 0
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        """From now (connection open, or the previous response sent) the next request head has a deadline."""
        self._head_generation += 1
        self.loop.call_later(self.header_timeout_s, self._head_deadline, self._head_generation)

    def _head_deadline(self, generation: int) -> None:
        """Close the connection if it is still waiting for the head armed as `generation` (not a later one)."""
        if generation != self._head_generation or self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self.transport.close()
