"""The seam between the engine and whatever carries its requests.

In: nothing. Out: the `Transport` protocol: send one request and get its reply (or a
`GatewayError` saying whether to ask again), say how long to wait before a retry, how
many requests are in flight and whether the server has paused the run. The live HTTP
`Gateway` is one transport; a provider's batch API, or an in-process fake in a test,
is another: the engine takes one and never builds it itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .client import GatewayStats, Reply


class Transport(Protocol):
    """What the engine needs of whatever carries its requests."""

    #: Where requests go, fit to print (no credentials).
    printable_url: str

    @property
    def stats(self) -> GatewayStats:
        """Counters the progress line and the summary read."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        ...

    async def send(
        self,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> Reply:
        """One request (to `model`, the judge it names): its reply, or a
        `GatewayError`."""
        ...

    def stop_sending(self) -> None:
        """The run is stopping: send nothing more; requests on the wire may finish,
        those not yet sent end with a `GatewayError` of kind "stopped"."""
        ...

    def backoff(self, attempt: int, hint_s: float | None) -> float:
        """Seconds to wait before retry `attempt` (1 = the first retry)."""
        ...

    def status(self) -> str:
        """A pause or other state worth showing on the progress line ("" when none)."""
        ...
