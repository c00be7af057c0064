"""What a request that produced no usable reply raises, wherever it failed.

In: what went wrong (its kind, the HTTP status, what the provider's error body says)
and whether asking again may help. Out: a `GatewayError`. A module of its own, with
no HTTP client behind it, so that what only names the error (profiles, the planner,
the worker processes) never imports one.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A request that did not produce a usable reply."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after_s: float | None = None,
        later: bool = False,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        #: What the provider's error body says: its code (`unsupported_parameter`,
        #: `content_filter`...) and the parameter it names.
        self.code = code
        self.param = param
        #: auth, rate_limited, server_error, timeout, connection, bad_response, client_error
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        #: Another run may pass, asking again within this one would not (the transport
        #: already waited as long as it is worth): a transient failure at once.
        self.later = later

    def describe(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.kind}{status}: {self}"
