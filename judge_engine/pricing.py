"""Prices of common judge models, per million input and output tokens (USD), and the
run's cost budget.

In: a model name (any deployment spelling) and token counts; the user's `--price
MODEL=IN,OUT` overrides; `--max-cost`. Out: the cost of a request, or None when the
price is not known; and a `Budget` that reserves a request's expected cost before it
is sent and says when the next one would pass the limit. List prices as published by
the vendors in 2025; check yours and override.
"""

from __future__ import annotations

from collections.abc import Mapping

from .models import normalize_model

#: normalized model -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-1": (2.00, 8.00),
    "gpt-4-1-mini": (0.40, 1.60),
    "gpt-4-1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gemini-2-5-pro": (1.25, 10.00),
    "gemini-2-5-flash": (0.30, 2.50),
    "gemini-2-5-flash-lite": (0.10, 0.40),
    "gemini-2-0-flash": (0.10, 0.40),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-v3": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
    "mistral-large": (2.00, 6.00),
    "mistral-small": (0.10, 0.30),
    "llama-3-3-70b-instruct": (0.60, 0.60),
    "qwen3-235b-a22b": (0.20, 0.60),
}


#: The Batch API's price as a share of the live price, unless told otherwise.
BATCH_DISCOUNT = 0.5


class PriceTable:
    """USD per million input and output tokens by model: the built-in table, the
    user's overrides over it; with `batch`, batch prices (the user's batch overrides,
    else `BATCH_DISCOUNT` of the live price)."""

    def __init__(
        self,
        overrides: Mapping[str, tuple[float, float]] | None = None,
        *,
        batch: bool = False,
        batch_overrides: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self._prices = dict(PRICES)
        for model, price in (overrides or {}).items():
            self._prices[normalize_model(model)] = price
        self._batch = batch
        self._batch_prices = {
            normalize_model(model): price for model, price in (batch_overrides or {}).items()
        }

    def price(self, model: str) -> tuple[float, float] | None:
        name = normalize_model(model)
        if self._batch:
            if name in self._batch_prices:
                return self._batch_prices[name]
            live = self._prices.get(name)
            return (live[0] * BATCH_DISCOUNT, live[1] * BATCH_DISCOUNT) if live else None
        return self._prices.get(name)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.price(model)
        if price is None:
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


class Budget:
    """What a run has spent and reserved, against `--max-cost`.

    A request reserves its expected cost (prompt estimate plus an expected verdict)
    before it is sent, and its real cost is spent when its reply's usage says; the run
    takes no request that would carry spent plus reserved past the limit. The limit is
    the results folder's: `before`, what earlier runs on it spent (the journal's
    records), counts against it. Costs of judges without a price are unknown: the run
    then cannot say what it spent."""

    def __init__(self, prices: PriceTable, limit: float | None, before: float = 0.0) -> None:
        self.prices = prices
        self.limit = limit
        #: What earlier runs on the folder spent.
        self.before = before
        self.spent = 0.0
        self.reserved = 0.0
        self.known = True
        #: Whether a request was refused for the limit.
        self.refused = False

    def reserve(self, judge: str, prompt_tokens: int, output_tokens: int) -> float | None:
        """Hold a request's expected cost; None when it would pass the limit."""
        expected = self.prices.cost(judge, prompt_tokens, output_tokens)
        if expected is None:
            self.known = False
            return 0.0
        if (
            self.limit is not None
            and self.before + self.spent + self.reserved + expected > self.limit
        ):
            self.refused = True
            return None
        self.reserved += expected
        return expected

    def release(self, reserved: float) -> None:
        self.reserved -= reserved

    def spend(self, judge: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The cost of a reply's usage, added to what was spent (None: unknown)."""
        cost = self.prices.cost(judge, prompt_tokens, completion_tokens)
        if cost is None:
            self.known = False
            return None
        self.spent += cost
        return cost


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """`MODEL=IN,OUT` (USD per million tokens) -> (model, (in, out))."""
    model, _, prices = text.partition("=")
    parts = prices.split(",")
    try:
        if not model.strip() or len(parts) != 2:
            raise ValueError
        pair = (float(parts[0]), float(parts[1]))
        if pair[0] < 0 or pair[1] < 0:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"--price takes MODEL=IN,OUT (USD per million tokens), not {text!r}"
        ) from None
    return model.strip(), pair
