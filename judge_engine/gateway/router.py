"""Many endpoints as one transport: each judge's requests go to its provider's endpoint.

In: the judges of a run, resolved (`providers.resolve`), and a transport per endpoint
(the live `Gateway`, or a batch transport), shared by the judges of one endpoint. Out:
a `Transport` that sends each request through the endpoint of the judge it names.

Each endpoint keeps its own rate limiter, in-flight cap, pauses and announced limits,
so one provider's 429s never slow another provider's judge; where a provider limits
each model apart (OpenAI, Azure), each model is an endpoint of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from .client import GatewayStats, Reply
from .errors import GatewayError
from .transport import Transport


class Router:
    """A `Transport` over one transport per endpoint (see the module docstring)."""

    def __init__(self, routes: Mapping[str, Transport], names: Mapping[int, str]) -> None:
        """`routes`: each judge's transport; `names`: a name for each transport (by its
        id), for the progress line."""
        self._routes = dict(routes)
        self._transports = list({id(t): t for t in routes.values()}.values())
        self._names = dict(names)
        urls = sorted({t.printable_url for t in self._transports})
        self.printable_url = urls[0] if len(urls) == 1 else ", ".join(urls)

    @property
    def transports(self) -> list[Transport]:
        return list(self._transports)

    @property
    def stats(self) -> GatewayStats:
        """Every endpoint's counters, added up."""
        total = GatewayStats()
        for transport in self._transports:
            for item in fields(GatewayStats):
                value = getattr(transport.stats, item.name)
                if isinstance(value, dict):
                    merged = getattr(total, item.name)
                    for key, count in value.items():
                        merged[key] = merged.get(key, 0) + count
                else:
                    setattr(total, item.name, getattr(total, item.name) + value)
        return total

    @property
    def in_flight(self) -> int:
        return sum(t.in_flight for t in self._transports)

    async def send(
        self,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> Reply:
        transport = self._routes.get(model or "")
        if transport is None:
            raise GatewayError("client_error", f"no endpoint for judge {model!r}", retryable=False)
        return await transport.send(body, estimated_tokens, extra_headers, model=model)

    def stop_sending(self) -> None:
        for transport in self._transports:
            transport.stop_sending()

    def backoff(self, attempt: int, hint_s: float | None) -> float:
        return self._transports[0].backoff(attempt, hint_s)

    def backoff_for(self, model: str, attempt: int, hint_s: float | None) -> float:
        """The backoff of the endpoint of `model`'s judge."""
        transport = self._routes.get(model) or self._transports[0]
        return transport.backoff(attempt, hint_s)

    def status(self) -> str:
        said = []
        for transport in self._transports:
            text = transport.status()
            if text:
                name = self._names.get(id(transport))
                said.append(f"{name}: {text}" if name and len(self._transports) > 1 else text)
        return "; ".join(said)


__all__ = ["Router"]
