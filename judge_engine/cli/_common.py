"""What the commands share: one-line errors, options made from the config classes, the
key from the environment, and output paths checked before any work is done.

In: argparse parsers and namespaces. Out: options on parsers, a `Config` from flags and
`--config FILE`, `UsageError`s for every mistake a user can make.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson

from ..config import (
    GROUPS,
    Config,
    ConfigError,
    Option,
    SourceOptions,
    flag,
    flatten,
    group_fields,
)
from ..files import UnsafePath, check_output, read_small
from ..results import read_sources
from ..sessions import Rejection, Session, read_sessions
from ..terminal import escape_field

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


class UsageError(Exception):
    """A user's mistake: exit 2 with this one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit 2), and whose long
    options are never abbreviated (`--fre` must not pass for `--fresh`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = escape_field(message)  # it may quote what was typed
        self.exit(2, f"judge-engine: error: {message} (see {self.prog} --help)\n")


def _base_type(annotation: Any) -> type:
    """int, float, str or bool from a field's annotation (`int | None` is int)."""
    hint = annotation
    if isinstance(hint, str):
        hint = eval(hint, vars(typing), {})  # the annotations of config.py, no user input
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        return str
    return hint if isinstance(hint, type) else str


def _number(kind: type, name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None

    convert.__name__ = kind.__name__
    return convert


def add_options(
    parser: argparse.ArgumentParser,
    groups: Sequence[str],
    *,
    only: Sequence[str] | None = None,
    positional: bool = True,
) -> None:
    """Options for the fields of the config groups named (or `only` those fields), with
    help and defaults from the config classes. Values a flag does not give stay unset
    (`argparse.SUPPRESS`), so a config file and the defaults fill them."""
    for group_name in groups:
        group = GROUPS[group_name]
        section = parser.add_argument_group(group_name, group.__doc__)
        for item, how in group_fields(group):
            if only is not None and item.name not in only:
                continue
            _add(section if not how.positional else parser, item, how, positional)


def _add(target: Any, item: dataclasses.Field[Any], how: Option, positional: bool) -> None:
    kind = _base_type(item.type)
    help_text = how.help
    default = item.default
    if how.positional:
        if positional:
            target.add_argument(
                item.name, nargs="*", metavar=how.metavar, help=help_text,
                default=argparse.SUPPRESS,
            )  # fmt: skip
        return
    if kind is bool:
        if how.negated:
            target.add_argument(
                how.negated, dest=item.name, action="store_false",
                help=how.negated_help or help_text, default=argparse.SUPPRESS,
            )  # fmt: skip
        else:
            target.add_argument(
                flag(item.name), dest=item.name, action="store_true", help=help_text,
                default=argparse.SUPPRESS,
            )  # fmt: skip
        return
    if default not in (None, (), ""):
        help_text += (
            f" (default {default:,})" if isinstance(default, int) else f" (default {default})"
        )
    target.add_argument(
        flag(item.name),
        dest=item.name,
        action="append" if how.many else "store",
        type=_number(kind, item.name) if kind in (int, float) else str,
        choices=how.choices,
        metavar=how.metavar,
        help=help_text.replace("%", "%%"),
        default=argparse.SUPPRESS,
    )


def given(args: argparse.Namespace, groups: Sequence[str]) -> dict[str, Any]:
    """The options the command line gave, by field name."""
    names = {item.name for group in groups for item, _ in group_fields(GROUPS[group])}
    return {name: value for name, value in vars(args).items() if name in names}


def read_config_file(path: str) -> dict[str, Any]:
    """Options from a TOML file, or a JSON one (a run's own run.json), by field name:
    a regular file of at most `files.SMALL_FILE` bytes."""
    file = Path(path)
    try:
        text = read_small(file, "--config")
    except UnsafePath as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read --config {file}: {exc.strerror or exc}") from None
    try:
        data: Any = orjson.loads(text) if file.suffix == ".json" else tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--config {file} is not valid {file.suffix[1:] or 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {file} does not hold options")
    for record in ("resume_command", "judges"):  # what a run.json also records
        data.pop(record, None)
    try:
        return flatten(data, f"--config {file}")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def build_config(
    args: argparse.Namespace,
    groups: Sequence[str],
    config_file: str | None = None,
    *,
    need_sources: bool = True,
    need_judge: bool = False,
) -> Config:
    """The config: the defaults, then a config file, then the flags given."""
    values = read_config_file(config_file) if config_file else {}
    values.update(given(args, groups))
    try:
        config = Config.of(**values)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if need_sources and not config.sources.sources:
        raise UsageError("no SOURCE given (name files, folders, globs, - or hf://...)")
    if need_judge and not config.panel.judge:
        raise UsageError("at least one --judge MODEL is needed")
    return config


def read(options: SourceOptions, sources: Sequence[str]) -> Iterator[Session | Rejection]:
    """The sessions of `sources`, read as the sources options say."""
    return read_sessions(sources, **options.reading())


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` from `low` to `high`, else one clear line."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not from {low:g} to {high:g}")
        return value

    convert.__name__ = kind.__name__
    return convert


def warn_if_empty(sessions: int, sources: Sequence[str]) -> None:
    """A warning, not an error, when the sources yield no session at all."""
    if sessions == 0:
        print(
            f"judge-engine: warning: no session in {', '.join(sources)} (empty, or every "
            "row rejected)",
            file=sys.stderr,
        )


def api_key(config: Config) -> str | None:
    """The key from the environment variable the config names."""
    return os.environ.get(config.gateway.api_key_env) or None


def writable_file(path: str, what: str, out: Path | None = None) -> Path:
    """An output file's path, checked before any work: its folder must exist, it must
    not be a folder itself, and it may not resolve (through symbolic links too) to a
    state file of any results folder or to a source of the run in `out`."""
    target = Path(path)
    try:
        check_output(target, what, read_sources(out) if out is not None else ())
    except UnsafePath as exc:
        raise UsageError(str(exc)) from None
    if target.is_dir():
        raise UsageError(f"cannot write {what} {target}: it is a folder, not a file")
    if not target.parent.is_dir():
        kind = "is a file" if target.parent.exists() else "does not exist"
        raise UsageError(f"cannot write {what} {target}: the folder {target.parent} {kind}")
    return target


def writable_folder(path: str, what: str) -> Path:
    """An output folder's path, checked before any work: it and its missing parents
    are made when needed, so nothing on the way may be a file."""
    target = Path(path)
    for ancestor in (target, *target.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"cannot use {what} {target}: {ancestor} is a file, not a folder")
            break
    return target


def write_output(target: Path, data: bytes, what: str) -> None:
    """Write an output file whole (a temporary file renamed), or say why it cannot be."""
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {what} {target}: {exc.strerror or exc}") from None


class RefuseKeyFlag(argparse.Action):
    """--api-key exists only to say why there is no such flag."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "the API key is never taken as a flag (it would land in shell history and "
            "process lists): set $OPENAI_API_KEY, or name another variable with --api-key-env"
        )
