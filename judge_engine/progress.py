"""What a run counts, shows while it works, and says when it ends.

In: finished journal records, and what the transport and the budget report. Out: a
`Tally` (per judge: verdicts, successes, failures by reason, skips, tokens, cost), a
tqdm bar on stderr (done/total sessions, verdicts/s, in flight, retries, 429s,
failures, tokens, cost, and any pause the server imposed; hidden by --quiet) and the
closing summary per judge.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm import tqdm

from .terminal import escape_field, raw


@dataclass
class JudgeTally:
    verdicts: int = 0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class Tally:
    """The run's counts: what was answered, failed and skipped, per judge and in all."""

    judges: dict[str, JudgeTally] = field(default_factory=dict)
    #: Per judge slot, the verdicts each model gave for it (a fallback's show here).
    slots: dict[str, Counter[str]] = field(default_factory=dict)
    verdicts: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    tokens: int = 0
    #: Requests left in batches at the server (--no-wait): collected by the next run.
    submitted: int = 0
    #: What providers refused and how judges' requests changed for it ("judge: change").
    adjustments: list[str] = field(default_factory=list)

    def judge(self, name: str) -> JudgeTally:
        tally = self.judges.get(name)
        if tally is None:
            tally = self.judges[name] = JudgeTally()
        return tally

    def count(
        self,
        status: str,
        judge: str,
        success: int | None,
        error: str | None,
        slot: str | None = None,
    ) -> None:
        """A record made durable: `status` is ok, failed or skipped."""
        if status == "ok":
            self.slots.setdefault(slot or judge, Counter())[judge] += 1
            self.verdicts += 1
            tally = self.judge(judge)
            tally.verdicts += 1
            tally.successes += success or 0
        elif status == "failed":
            self.failed += 1
            self.judge(judge).failures[(error or "unknown").split(":")[0]] += 1
        else:
            self.skipped += 1
            self.judge(judge).skipped += 1

    def used(self, judge: str, tokens: int, cost: float | None) -> None:
        """Tokens (and cost, when known) a reply used."""
        self.tokens += tokens
        tally = self.judge(judge)
        tally.tokens += tokens
        if cost is not None:
            tally.cost_usd += cost


#: The bar when the number of sessions is known, and while it is not (raw OTLP files,
#: stdin, the hub): what matters first, so that a narrow terminal cuts the least.
_KNOWN = "{percentage:3.0f}% {n_fmt}/{total_fmt} sessions |{bar:10}| {elapsed}<{remaining}{postfix}"
_UNKNOWN = "{n_fmt} sessions so far, {elapsed}{postfix}"


class Progress:
    """A tqdm bar of sessions whose figures are refreshed at most twice a second: the
    failures, 429s and cost first (an 80-column terminal keeps them), then what is in
    flight, retries and tokens. Without a known total it counts "sessions so far"; a
    run that read everything ends at 100%."""

    def __init__(
        self,
        total: int | None,
        *,
        quiet: bool,
        initial: int = 0,
        ncols: int | None = None,
        file: TextIO | None = None,
    ) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            disable=quiet,
            # It draws with a carriage return on the raw stream; its figures are escaped.
            file=file or raw(sys.stderr),
            dynamic_ncols=ncols is None,
            ncols=ncols,
            mininterval=0.5,
            smoothing=0.1,
            bar_format=_KNOWN if total else _UNKNOWN,
        )
        self._shown = 0.0

    def advance(self, sessions: int, status: dict[str, Any]) -> None:
        if sessions:
            self._bar.update(sessions)
        now = time.monotonic()
        if now - self._shown >= 0.5:
            self._shown = now
            self._bar.set_postfix_str(figures(status), refresh=False)

    def set_total(self, total: int | None) -> None:
        """The number of sessions, once it is known (counted beside the run)."""
        if total is not None:
            self._bar.total = max(total, self._bar.n)
            self._bar.bar_format = _KNOWN
            self._bar.refresh()

    def complete(self) -> None:
        """Every session was read: whatever the estimate, the bar ends at 100%."""
        self._bar.total = self._bar.n
        self._bar.bar_format = _KNOWN

    def say(self, text: str) -> None:
        """A line for the person at the terminal, above the bar (on stderr, even with
        --quiet: it says what the run is doing about their Ctrl-C)."""
        tqdm.write(f"judge-engine: {text}", file=sys.stderr)

    def refresh(self, status: dict[str, Any]) -> None:
        """Redraw with new figures though no session finished (a pause, a slow reply)."""
        self._shown = time.monotonic()
        self._bar.set_postfix_str(figures(status), refresh=True)

    def close(self, status: dict[str, Any] | None = None) -> None:
        if status is not None:
            # the final figures, unthrottled
            self._bar.set_postfix_str(figures(status), refresh=True)
        self._bar.close()


def figures(status: dict[str, Any]) -> str:
    """The progress figures in one short line, the ones that matter first; any text a
    server gave made inert (`terminal`)."""
    parts = [f"{status.get('failed', 0):,} failed", f"{status.get('429s', 0):,} 429s"]
    if "cost" in status:
        parts.append(str(status["cost"]))
    parts.append(f"{status.get('verdicts', 0):,} verdicts")
    parts.append(f"{status.get('in_flight', 0):,} in flight")
    if status.get("retries"):
        parts.append(f"{status['retries']:,} retries")
    tokens = status.get("tokens", 0)
    parts.append(f"{tokens / 1000:,.0f}k tokens" if tokens >= 10_000 else f"{tokens:,} tokens")
    if status.get("server"):
        parts.append(str(status["server"]))
    return escape_field(", ".join(parts))


def fallback_lines(slots: dict[str, Counter[str]]) -> list[str]:
    """Where a slot's verdicts came from a fallback model: "slot gpt-5.4: 49 of its 63
    verdicts answered by the fallback gpt-4.1-mini"."""
    lines = []
    for slot, judges in slots.items():
        others = {judge: n for judge, n in judges.items() if judge != slot}
        if others:
            total = sum(judges.values())
            by = ", ".join(f"{n:,} by {judge}" for judge, n in sorted(others.items()))
            lines.append(f"slot {slot}: of its {total:,} verdicts, {by} (the fallback)")
    return lines


def format_summary(
    tallies: dict[str, JudgeTally],
    *,
    wall_s: float,
    sent: int,
    retries: int,
    throttled: int,
    tokens: int,
    cost_usd: float | None,
    order: Sequence[str] = (),
    batch: bool = False,
    slots: dict[str, Counter[str]] | None = None,
    adjustments: Sequence[str] = (),
) -> str:
    """The closing table per judge: the panel's judges in `order` first, then others."""
    lines = ["", "judge                           verdicts  success   failed  skipped"]
    ranked = sorted(
        tallies.items(),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    for judge, tally in ranked:
        rate = f"{tally.successes / tally.verdicts:7.1%}" if tally.verdicts else "      -"
        lines.append(
            f"{judge:<30} {tally.verdicts:>9,} {rate:>8} {sum(tally.failures.values()):>8,} "
            f"{tally.skipped:>8,}"
        )
        for reason, count in tally.failures.most_common():
            lines.append(f"{'':<32}failed {count:,}: {reason}")
    lines += fallback_lines(slots or {})
    for change in adjustments:
        lines.append(f"a provider refused a parameter; from then on, judge {change}")
    cost = f"${cost_usd:,.4f}" if cost_usd is not None else "unknown (no price for a judge)"
    cost += " at batch prices" if batch and cost_usd is not None else ""
    per_second = sent / wall_s if wall_s > 0 else 0.0
    lines.append(
        f"\nwall time {wall_s:,.1f} s, {sent:,} requests ({per_second:,.1f}/s), "
        f"{retries:,} retries, {throttled:,} throttled (429), {tokens:,} tokens, cost {cost}"
    )
    return "\n".join(lines)
