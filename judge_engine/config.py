"""The options of a grading run, grouped, each documented once with its default.

In: keyword arguments (`Config.of(judge=("gpt-4.1",), rpm=500)`), a mapping read from
TOML or JSON (`--config FILE`; a run's own `run.json` fed back), or command-line flags.
Out: a frozen, validated `Config` of six groups: `sources`, `panel`, `request`,
`gateway`, `batch`, `retry`, `run`. A field's name is its long flag's (`max_prompt_tokens` is
`--max-prompt-tokens`), its help and default are written here once, and the command
line, config files and `run.json` are all derived from these classes. Every value is
checked where it is made, so a library caller gets the errors the command line gives:
one line naming the option, as a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .gateway import DEFAULT_BASE_URL, endpoint_url, safe_url
from .gateway.profiles import EFFORTS
from .gateway.providers import ProviderError, merge_overrides, with_overrides
from .guard import MODES
from .pricing import PriceTable, parse_price
from .prompt import DEFAULT_MAX_PROMPT_TOKENS, MIN_PROMPT_TOKENS
from .sessions import DEFAULT_MAX_OPEN_MB, DEFAULT_MAX_ROW_MB, FORMATS

#: Requests in flight when --concurrency is not given.
DEFAULT_CONCURRENCY = 64
#: What a judge may answer that gives its slot to a fallback judge (--fallback-on).
FALLBACK_ON = ("content_filter", "refused")


class ConfigError(ValueError):
    """An option with a value it cannot take: one line that names it."""


@dataclass(frozen=True)
class Option:
    """How a field shows as an option (field metadata)."""

    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    #: Given once per value, gathered into a tuple (`--judge A --judge B`).
    many: bool = False
    #: The command's positional arguments.
    positional: bool = False
    #: For a field that is on by default: the flag that turns it off (`--no-redact`),
    #: and that flag's help.
    negated: str | None = None
    negated_help: str | None = None
    #: A one-run action, never read from a file (`--fresh`).
    flag_only: bool = False


def option(default: Any, help: str, **how: Any) -> Any:
    """A dataclass field with its option's help: the only place both are written."""
    return field(default=default, metadata={"option": Option(help, **how)})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _number(name: str, value: Any, kind: type, low: float, high: float | None = None) -> None:
    """A whole or real number within [low, high], finite; else one clear line."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int:
        ok = float(value).is_integer()
    if ok:
        ok = math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        what = "a whole number" if kind is int else "a finite number"
        span = (
            f"from {_shown(low)} to {_shown(high)}"
            if high is not None
            else (f"of at least {_shown(low)}")
        )
        raise ConfigError(f"{flag(name)} must be {what} {span}, not {value!r}")


def _shown(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"


def _choice(name: str, value: Any, choices: tuple[str, ...], optional: bool = True) -> None:
    if (value is None and optional) or value in choices:
        return
    raise ConfigError(f"{flag(name)} must be one of {', '.join(choices)}, not {value!r}")


def _names(name: str, values: Any, *, unique: bool = False) -> None:
    if not isinstance(values, tuple) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ConfigError(f"{flag(name)} takes names (text), not {values!r}")
    if unique and len(set(values)) != len(values):
        raise ConfigError(
            f"each {flag(name)} may be given once (use --repeats to ask a judge again)"
        )


def _text(name: str, value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ConfigError(f"{flag(name)} takes text, not {value!r}")


@dataclass(frozen=True)
class SourceOptions:
    """Where sessions come from, and how their rows are read."""

    sources: tuple[str, ...] = option(
        (),
        "files, folders, globs, - (stdin) or hf://OWNER/NAME?config=C&split=S",
        positional=True,
        many=True,
        metavar="SOURCE",
    )
    format: str | None = option(
        None, "force one trace format instead of detecting it per row", choices=FORMATS
    )
    agent_model: str | None = option(
        None,
        "the agent model of rows that name none (e.g. Hermes files read locally)",
        metavar="MODEL",
    )
    max_row_mb: int = option(
        DEFAULT_MAX_ROW_MB,
        "reject rows larger than this many MB, without holding them",
        metavar="MB",
    )
    benchmark: str | None = option(
        None,
        "the benchmark of sessions whose rows name none (their rubric follows it)",
        metavar="NAME",
    )
    benchmark_from: str | None = option(
        None,
        "where to read the benchmark of sessions whose rows name none: a row field or span "
        "attribute (resource attributes too) by name, or file:REGEX on the file name (the "
        "group named benchmark, else the first group)",
        metavar="FIELD",
    )
    session_by: str = option(
        "auto",
        "how raw OTLP spans make sessions: auto (session.id or gen_ai.conversation.id, "
        "else the trace, else the file), trace, file, or an attribute's name (e.g. an "
        "agent run id) whose value makes one session",
        metavar="RULE",
    )
    max_open_mb: int = option(
        DEFAULT_MAX_OPEN_MB,
        "raw OTLP sessions still waiting for spans hold at most this many MB together "
        "(estimated); beyond, the largest is rejected as incomplete_trace",
        metavar="MB",
    )

    def __post_init__(self) -> None:
        _names("sources", self.sources)
        _choice("format", self.format, FORMATS)
        _text("agent_model", self.agent_model)
        _number("max_row_mb", self.max_row_mb, int, 1, 1 << 20)
        _text("session_by", self.session_by)
        _text("benchmark", self.benchmark)
        _text("benchmark_from", self.benchmark_from)
        if self.benchmark_from and self.benchmark_from.startswith("file:"):
            try:
                re.compile(self.benchmark_from[5:])
            except re.error as exc:
                raise ConfigError(f"--benchmark-from: not a regular expression: {exc}") from None
        _number("max_open_mb", self.max_open_mb, int, 1, 1 << 24)

    def reading(self) -> dict[str, Any]:
        """How rows are read, as `read_sessions` takes it."""
        return {
            "fmt": self.format,
            "agent_model": self.agent_model,
            "max_row_mb": self.max_row_mb,
            "max_open_mb": self.max_open_mb,
            "session_by": self.session_by,
            "benchmark": self.benchmark,
            "benchmark_from": self.benchmark_from,
        }


@dataclass(frozen=True)
class PanelOptions:
    """Who judges: the panel, its fallbacks, the guard, and how each judge is asked."""

    judge: tuple[str, ...] = option(
        (), "a judge model (repeat for a panel: every judge grades every session)",
        many=True, metavar="MODEL",
    )  # fmt: skip
    fallback_judge: tuple[str, ...] = option(
        (),
        "takes a slot whose judge produced the session (repeatable, tried in order)",
        many=True,
        metavar="MODEL",
    )
    guard: str = option(
        "model",
        "self-grading guard: model (no model grades its own runs), vendor (no vendor "
        "grades its own vendor's runs) or off",
        choices=MODES,
    )
    repeats: int = option(
        1,
        "ask each judge this many times per session (needs --temperature above 0 or a "
        "nondeterministic provider)",
        metavar="K",
    )
    temperature: float = option(0.0, "the judges' sampling temperature", metavar="T")
    max_output_tokens: int | None = option(
        None,
        "the output-token limit of each verdict (max_tokens, or max_completion_tokens for "
        "reasoning models; default: the provider's, or 1,024 where one is required)",
        metavar="N",
    )
    reasoning_effort: str | None = option(
        None,
        "reasoning_effort of reasoning judges (o-series, gpt-5, Gemini 2.5) that take it",
        choices=EFFORTS,
    )
    fallback_on: tuple[str, ...] = option(
        (),
        "also give a slot to its --fallback-judge when its judge answers with this "
        "(repeatable): content_filter (a provider's content filter refused the session), "
        "refused (the judge refused to grade)",
        many=True,
        choices=FALLBACK_ON,
    )

    def __post_init__(self) -> None:
        _names("judge", self.judge, unique=True)
        _names("fallback_judge", self.fallback_judge)
        _choice("guard", self.guard, MODES, optional=False)
        _number("repeats", self.repeats, int, 1, 1000)
        _number("temperature", self.temperature, float, 0.0, 2.0)
        if self.max_output_tokens is not None:
            _number("max_output_tokens", self.max_output_tokens, int, 1, 10**6)
        _choice("reasoning_effort", self.reasoning_effort, EFFORTS)
        for item in self.fallback_on:
            _choice("fallback_on", item, FALLBACK_ON, optional=False)


@dataclass(frozen=True)
class RequestOptions:
    """What each judge request holds."""

    max_prompt_tokens: int = option(
        DEFAULT_MAX_PROMPT_TOKENS, "estimated prompt-token budget of each request", metavar="N"
    )
    rubrics: str | None = option(None, "a folder of your own rubric .toml files", metavar="DIR")
    redact: bool = option(
        True,
        "redact credential shapes found in traces (the run's own key is always removed)",
        negated="--no-redact",
        negated_help="keep credential shapes found in traces as they are (the run's own "
        "key is still removed)",
    )

    def __post_init__(self) -> None:
        _number("max_prompt_tokens", self.max_prompt_tokens, int, MIN_PROMPT_TOKENS, 10**7)
        _text("rubrics", self.rubrics)
        if not isinstance(self.redact, bool):
            raise ConfigError(f"redact takes true or false, not {self.redact!r}")


@dataclass(frozen=True)
class GatewayOptions:
    """The OpenAI-compatible endpoint, and the limits requests keep to."""

    base_url: str | None = option(
        None,
        f"the OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else {DEFAULT_BASE_URL})",
        metavar="URL",
    )
    api_key_env: str = option(
        "OPENAI_API_KEY",
        "the environment variable holding the key (the key itself is never an option)",
        metavar="NAME",
    )
    concurrency: int | None = option(
        None,
        f"requests in flight at most (default {DEFAULT_CONCURRENCY}, reached by a slow start "
        "from 8 that doubles each round trip; a number given is used from the start; with "
        "--batch: requests waiting for their batches, default twice --batch-size per judge model)",
        metavar="N",
    )
    rpm: float | None = option(
        None, "requests per minute, never exceeded (default: what the server announces)",
        metavar="N",
    )  # fmt: skip
    tpm: int | None = option(
        None, "tokens per minute, never exceeded (estimated, corrected by usage)", metavar="N"
    )
    timeout: float = option(120.0, "seconds each request may take", metavar="S")
    allow_model_mismatch: bool = option(
        False,
        "accept replies that name another model than asked (e.g. Azure deployment names); "
        "the served model is recorded",
    )
    provider: tuple[str, ...] = option(
        (),
        "a provider's setting over the built-in table (repeatable): NAME.KEY=VALUE, KEY one "
        "of base_url, api_key_env, protocol, auth, headers.NAME, rpm, tpm, concurrency, "
        "api_version (a config file's [providers.NAME] tables say the same)",
        many=True,
        metavar="NAME.KEY=VALUE",
    )

    def __post_init__(self) -> None:
        _text("base_url", self.base_url)
        if self.base_url is not None:
            try:
                endpoint_url(self.base_url)
            except ValueError as exc:
                raise ConfigError(f"--base-url: {exc}") from None
        _text("api_key_env", self.api_key_env)
        if self.concurrency is not None:
            _number("concurrency", self.concurrency, int, 1, 10_000)
        if self.rpm is not None:
            _number("rpm", self.rpm, float, 0.01, 1e9)
        if self.tpm is not None:
            _number("tpm", self.tpm, int, 1, 10**12)
        _number("timeout", self.timeout, float, 0.1, 86_400)
        _names("provider", self.provider)
        try:
            with_overrides(merge_overrides({}, self.provider))
        except ProviderError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def url(self) -> str:
        """The endpoint: the option, else $OPENAI_BASE_URL, else OpenAI's."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


@dataclass(frozen=True)
class BatchOptions:
    """Grading through the provider's Batch API: half price, answers within a day."""

    batch: bool = option(
        False,
        "send the requests through the Batch API (files and batches) instead of one by one: "
        "half price, answers within the completion window",
    )
    batch_size: int = option(
        2_000,
        "requests per batch (at most 50,000; a batch file is also kept under 100 MB)",
        metavar="N",
    )
    batch_fallback: str = option(
        "none",
        "where a request goes after its batch failed it in a way another try may pass: "
        "none (a later batch) or live (the live endpoint)",
        choices=("none", "live"),
    )
    no_wait: bool = option(
        False, "submit the batches and exit; the same command later collects the answers"
    )
    batch_price: tuple[str, ...] = option(
        (),
        "USD per million input and output tokens of a model at batch prices (default half "
        "its live price)",
        many=True,
        metavar="MODEL=IN,OUT",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.batch, bool) or not isinstance(self.no_wait, bool):
            raise ConfigError("--batch and --no-wait take true or false")
        _number("batch_size", self.batch_size, int, 1, 50_000)
        _choice("batch_fallback", self.batch_fallback, ("none", "live"), optional=False)
        _names("batch_price", self.batch_price)
        for text in self.batch_price:
            try:
                parse_price(text)
            except ValueError as exc:
                raise ConfigError(str(exc).replace("--price", "--batch-price")) from None
        if not self.batch and (self.no_wait or self.batch_fallback != "none"):
            raise ConfigError("--no-wait and --batch-fallback go with --batch")

    def prices(self) -> dict[str, tuple[float, float]]:
        return dict(parse_price(text) for text in self.batch_price)


@dataclass(frozen=True)
class RetryOptions:
    """How a request that may pass on another try is asked again."""

    max_retries: int = option(
        6,
        "retries of a request after 408/409/429/5xx, timeouts, drops and unparseable verdicts",
        metavar="N",
    )
    backoff_base: float = option(
        0.5, "seconds of the first backoff without a server hint (doubles, jittered)", metavar="S"
    )
    backoff_cap: float = option(60.0, "the longest backoff without a server hint", metavar="S")
    max_pause: float = option(
        60.0,
        "the longest one pause holds every request, whatever the server asks (then one "
        "request probes)",
        metavar="S",
    )

    def __post_init__(self) -> None:
        _number("max_retries", self.max_retries, int, 0, 1000)
        _number("backoff_base", self.backoff_base, float, 0.0, 3600)
        _number("backoff_cap", self.backoff_cap, float, 0.0, 3600)
        _number("max_pause", self.max_pause, float, 0.0, 60)


@dataclass(frozen=True)
class RunOptions:
    """The run itself: where it writes, how much it does, what it may spend."""

    out: str = option("out", "the results folder", metavar="DIR")
    limit: int | None = option(None, "grade only the first N sessions", metavar="N")
    fresh: bool = option(
        False,
        "start over: the journal in OUT is moved aside under a dated name",
        flag_only=True,
    )
    retry_failed: bool = option(
        False, "ask again the requests that failed for good (a 4xx, a verdict never parsed)"
    )
    regrade_changed: bool = option(
        False,
        "ask again the sessions graded before whose row has changed since (by default "
        "their verdicts are kept, and the run says how many changed)",
    )
    max_cost: float | None = option(
        None,
        "the cap of everything runs on OUT spend (USD; what earlier runs spent counts): "
        "no request is sent that could pass it",
        metavar="USD",
    )
    price: tuple[str, ...] = option(
        (),
        "USD per million input and output tokens of a model, over the built-in table",
        many=True,
        metavar="MODEL=IN,OUT",
    )
    canary: str | None = option(
        None,
        "a small labelled set (a source whose rows carry their 0/1 label) graded beside "
        "the sources in every run by the same panel, journaled apart (OUT/canaries/) and "
        "never counted: the summary and the report warn when a judge's sensitivity or "
        "specificity on it moved beyond chance since the previous run, or the model "
        "behind a judge's name or a rubric changed",
        metavar="FILE",
    )
    grace: float = option(
        10.0, "seconds requests already sent get to finish after Ctrl-C", metavar="S"
    )
    workers: int | None = option(
        None,
        "processes that read, normalize and render sessions while this one sends and "
        "journals (default: the usable cores, at most 8; 1: everything in this process; "
        "a run starts them only after its first 16 MB or 1,024 rows)",
        metavar="N",
    )
    quiet: bool = option(False, "no progress bar")

    def __post_init__(self) -> None:
        _text("out", self.out)
        if self.canary is not None:
            _text("canary", self.canary)
        if self.limit is not None:
            _number("limit", self.limit, int, 1)
        if self.max_cost is not None:
            _number("max_cost", self.max_cost, float, 0.0)
        _names("price", self.price)
        for text in self.price:
            try:
                parse_price(text)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        _number("grace", self.grace, float, 0.0, 3600)
        if self.workers is not None:
            _number("workers", self.workers, int, 1, 256)

    def prices(self) -> dict[str, tuple[float, float]]:
        return dict(parse_price(text) for text in self.price)


#: The groups, in the order they show in help and in run.json.
GROUPS: dict[str, type] = {
    "sources": SourceOptions,
    "panel": PanelOptions,
    "request": RequestOptions,
    "gateway": GatewayOptions,
    "batch": BatchOptions,
    "retry": RetryOptions,
    "run": RunOptions,
}


def group_fields(group: type) -> Iterator[tuple[dataclasses.Field[Any], Option]]:
    for item in fields(group):
        yield item, item.metadata["option"]


#: Every field name -> its group's name (names are unique across groups).
_WHERE = {item.name: name for name, group in GROUPS.items() for item, _ in group_fields(group)}


@dataclass(frozen=True)
class Config:
    """A grading run's options (see the module docstring)."""

    sources: SourceOptions = field(default_factory=SourceOptions)
    panel: PanelOptions = field(default_factory=PanelOptions)
    request: RequestOptions = field(default_factory=RequestOptions)
    gateway: GatewayOptions = field(default_factory=GatewayOptions)
    batch: BatchOptions = field(default_factory=BatchOptions)
    retry: RetryOptions = field(default_factory=RetryOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def in_flight(self) -> int:
        """Requests sent and not yet answered, at most: --concurrency; by default 64
        live, and two batches' worth per judge model with --batch (one model a batch)."""
        if self.gateway.concurrency is not None:
            return self.gateway.concurrency
        if not self.batch.batch:
            return DEFAULT_CONCURRENCY
        models = {*self.panel.judge, *self.panel.fallback_judge}
        return 2 * self.batch.batch_size * max(1, len(models))

    def price_table(self) -> PriceTable:
        """The prices a run pays: live, or at batch prices with --batch."""
        return PriceTable(
            self.run.prices(), batch=self.batch.batch, batch_overrides=self.batch.prices()
        )

    @classmethod
    def of(cls, **values: Any) -> Config:
        """A config from field names, whatever their group (`Config.of(judge=("m",))`)."""
        return cls().replace(**values)

    def replace(self, **values: Any) -> Config:
        """A copy with fields changed by name, whatever their group."""
        changes: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            group = _WHERE.get(name)
            if group is None:
                raise ConfigError(f"unknown option {name!r}")
            changes.setdefault(group, {})[name] = _coerce(GROUPS[group], name, value)
        return dataclasses.replace(
            self,
            **{
                group: dataclasses.replace(getattr(self, group), **given)
                for group, given in changes.items()
            },
        )

    def check_gradable(self) -> None:
        """What a grading run needs beyond valid options: sources, a judge, and a price
        for every judge when the run has a cost limit."""
        if not self.sources.sources:
            raise ConfigError("grade needs at least one SOURCE (or sources = [...] in --config)")
        if not self.panel.judge:
            raise ConfigError("grade needs at least one --judge MODEL")
        canary = self.run.canary
        if canary is not None and "://" not in canary and not Path(canary).is_file():
            raise ConfigError(f"--canary {canary}: no such file")
        if self.run.max_cost is not None:
            table = self.price_table()
            unpriced = [
                judge
                for judge in (*self.panel.judge, *self.panel.fallback_judge)
                if table.price(judge) is None
            ]
            if unpriced:
                raise ConfigError(
                    f"--max-cost needs a price for {', '.join(unpriced)}: add --price MODEL=IN,OUT"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "the config") -> Config:
        """Options from a TOML or JSON mapping: the groups as tables (`[panel]`), or
        field names at the top level, or both. The API key never comes from a file, and
        neither does `fresh` (a file that held it would start over on every resume)."""
        return cls().replace(**flatten(data, origin))

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        """The options as `from_mapping` reads them, grouped, fit to store (run.json):
        no secret (the key is never an option; the base URL loses its credentials),
        and no `fresh` (a stored run never starts over)."""
        out: dict[str, dict[str, Any]] = {}
        for name in GROUPS:
            group = getattr(self, name)
            values = {
                item.name: list(value) if isinstance(value, tuple) else value
                for item, how in group_fields(type(group))
                if not how.flag_only
                for value in (getattr(group, item.name),)
            }
            out[name] = values
        if out["gateway"]["base_url"]:
            out["gateway"]["base_url"] = safe_url(out["gateway"]["base_url"])
        return out


#: Plural spellings config files of the first version used.
_ALIASES = {"judges": "judge", "fallback_judges": "fallback_judge", "prices": "price"}


def flatten(data: Mapping[str, Any], origin: str = "the config") -> dict[str, Any]:
    """A config mapping's values by field name (tables or top-level keys)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        name = _ALIASES.get(name, name)
        if name == "providers" and isinstance(value, Mapping):
            flat.setdefault("provider", [])
            flat["provider"] = [*flat["provider"], *_provider_settings(value, origin)]
            continue
        if name in GROUPS and isinstance(value, Mapping):
            for inner, item in value.items():
                inner_name = str(inner).replace("-", "_")
                flat[_checked(_ALIASES.get(inner_name, inner_name), origin)] = item
        else:
            flat[_checked(name, origin)] = value
    return flat


def _provider_settings(tables: Mapping[str, Any], origin: str) -> list[str]:
    """`[providers.NAME]` tables as `--provider NAME.KEY=VALUE` settings."""
    out: list[str] = []
    for name, values in tables.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [providers.{name}] must be a table")
        for key, value in values.items():
            if key in ("api_key", "key"):
                raise ConfigError(
                    f"{origin}: the API key never goes in a file; use the environment"
                )
            if key == "headers" and isinstance(value, Mapping):
                out += [f"{name}.headers.{h}={v}" for h, v in value.items()]
            else:
                out.append(f"{name}.{key}={value}")
    return out


def _checked(name: str, origin: str) -> str:
    if name in ("api_key", "key", "openai_api_key"):
        raise ConfigError(f"{origin}: the API key never goes in a file; use the environment")
    if name not in _WHERE:
        raise ConfigError(f"{origin}: unknown option {name!r}")
    group = GROUPS[_WHERE[name]]
    how = next(h for item, h in group_fields(group) if item.name == name)
    if how.flag_only:
        raise ConfigError(
            f"{origin}: {name} is an action for one run, not a setting (a file that held "
            f"it would repeat it on every resume): pass {flag(name)} as a flag"
        )
    return name


def _coerce(group: type, name: str, value: Any) -> Any:
    """A value from a file or a caller, in the field's shape: lists of names become
    tuples, a single name a one-item tuple, paths text; whole numbers given as floats stay numbers
    (validation says if they are wrong)."""
    how = next(h for item, h in group_fields(group) if item.name == name)
    if how.many:
        if isinstance(value, (str, os.PathLike)):
            return (os.fspath(value),)
        if isinstance(value, (list, tuple)):
            return tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    if isinstance(value, os.PathLike):  # a folder given as a Path
        return os.fspath(value)
    return value
