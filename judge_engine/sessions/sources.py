"""Where rows come from: local files, folders, globs, stdin and the Hugging Face Hub.

In: source specs as the user typed them. Out: `RawRow`s (a decoded JSON object or
Parquet row, with its source and 0-based row index) and `Rejection`s for rows that
do not even decode. Nothing is materialized whole: JSONL is read a line at a time,
Parquet a few rows at a time, the hub through `datasets`' streaming mode.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import lzma
import os
import re
import socket
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from ..files import is_state_name
from ..redact import redact_text
from .model import Known, Rejection

#: Compressed files are read streaming, by their ending: gzip, bzip2 and xz with the
#: standard library; zstd when the `zstandard` package is installed.
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
#: File endings read as sources when a folder or glob is given.
SUFFIXES = (
    ".jsonl", ".ndjson", ".json", ".parquet",
    *(f"{base}{packed}" for base in (".jsonl", ".ndjson", ".json") for packed in _COMPRESSED),
)  # fmt: skip
#: Rows per Parquet batch: rows reach tens of MB, so few at a time.
_PARQUET_BATCH = 8
_HUB_PREFIX = "hf://"


class SourceError(Exception):
    """A source that cannot be read at all: a missing file, an unreachable hub."""


@dataclass(frozen=True, slots=True)
class RawRow:
    source: str
    row: int
    data: Mapping[str, Any]
    #: The hub config the row came from (Hermes uses it as the agent model).
    hub_config: str | None = None
    #: A checksum of the row's content ("" until taken: see `fingerprint`).
    fingerprint: str = ""


#: Hex digits of a fingerprint that are its digest; the rest is the row's length.
DIGEST_HEX = 16


def fingerprint(content: bytes | memoryview) -> str:
    """A row's content as 64 bits of its SHA-1 digest and its length, in hex (about
    1 GB/s). Enough to tell a changed row from the same one, and to know a row seen
    before without parsing it again (a resume): two different rows share one with a
    chance of about 1 in 10^19 per pair."""
    return f"{hashlib.sha1(content).hexdigest()[:DIGEST_HEX]}{len(content):x}"


def fingerprint_of(data: Mapping[str, Any]) -> str:
    """The fingerprint of a decoded row (Parquet, the hub, an assembled OTLP session)."""
    try:
        content = orjson.dumps(
            data, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        )
    except (TypeError, orjson.JSONEncodeError):
        content = repr(data).encode("utf-8", "replace")
    return fingerprint(content)


#: Files a results folder holds: never read as sources when a folder or glob is
#: expanded (a results folder inside a source folder would feed a run its own output).
RESULT_FILES = frozenset(
    {
        "journal.jsonl",
        "scores.jsonl",
        "rejected.jsonl",
        "requests.jsonl",
        "summary.json",
        "run.json",
        "scores-by-session.jsonl",
        "scores-by-session.parquet",
        "scores-by-session.csv",
        "scores-braintrust.jsonl",
    }
)


def _results_folder(folder: Path) -> bool:
    """Whether a folder is a judge-engine results folder (it holds OUT's lock file or a
    journal)."""
    return (folder / ".judge-engine.lock").exists() or (folder / "journal.jsonl").exists()


def _own_file(name: str) -> bool:
    """A file judge-engine itself writes into a results folder, by its name (exports
    a --fresh set aside under a dated name too)."""
    return (
        name in RESULT_FILES
        or is_state_name(name)
        or name.endswith(".tmp")
        or name.startswith(("scores-by-session-", "scores-braintrust-"))
    )


def _wanted(path: Path, top: Path, excluded: Sequence[Path], seen: dict[Path, bool]) -> bool:
    """Whether a file found under `top` (the folder given, or a glob's folder) is a
    source: not a results file, not in an excluded folder (unless `top` is that folder
    itself: the user named it, and only its own files are left out, by name), and not
    in a results folder below `top`."""
    if _own_file(path.name):
        return False
    resolved = path.resolve()
    named = top.resolve()
    if any(resolved.is_relative_to(f) and named != f for f in excluded):
        return False
    for parent in path.parents:
        if parent == top or not parent.is_relative_to(top):
            break
        if parent not in seen:  # one look per folder, however many files it holds
            seen[parent] = _results_folder(parent)
        if seen[parent]:
            return False
    return True


def _glob_folder(spec: str) -> Path:
    """The folder a glob looks in: its longest leading part without a wildcard."""
    parts = Path(spec).parts
    magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:magic]) if magic else Path(".")


def expand(specs: Sequence[str], exclude: Sequence[Path] = ()) -> list[str]:
    """Resolve folders and globs to files; check that every source exists.

    Expanding a folder or a glob leaves out results folders (and the `exclude` ones,
    the run's own OUT) and results files by name; a file named outright is read."""
    excluded = [folder.resolve() for folder in exclude]
    seen: dict[Path, bool] = {}
    out: list[str] = []
    for spec in specs:
        if spec == "-" or spec.startswith(_HUB_PREFIX):
            out.append(spec)
            continue
        path = Path(spec)
        if path.is_dir():
            candidates = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)]
            found = sorted(str(p) for p in candidates if _wanted(p, path, excluded, seen))
            if not found and candidates:
                raise SourceError(
                    f"folder {spec} holds only judge-engine's own results files (a results "
                    "folder): name the folder of your traces"
                )
            if not found:
                raise SourceError(f"folder {spec} holds no {', '.join(SUFFIXES)} files")
            out.extend(found)
        elif path.is_file():
            out.append(spec)
        elif glob.has_magic(spec):
            matches = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
            top = _glob_folder(spec)
            chosen = sorted(p for p in matches if _wanted(Path(p), top, excluded, seen))
            if not chosen and matches:
                raise SourceError(
                    f"{spec} matches only judge-engine's own results files ({len(matches)} "
                    "of them): name the files of your traces"
                )
            if not chosen:
                raise SourceError(f"no file matches {spec}")
            out.extend(chosen)
        else:
            raise SourceError(f"no such file or folder: {spec}")
    return out


#: The largest row read, by default (`--max-row-mb`): a bigger one is a rejected row.
DEFAULT_MAX_ROW_MB = 128
#: A Parquet row group larger than this many maximal rows is not read (its rows are
#: rejected): pyarrow holds a row group's column chunks whole.
_ROW_GROUP_ROWS = 4


#: Rows the caller knows already: a fingerprint -> a number it gave that row (the
#: session id's, say), or None for a row to read.
KnownRows = Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class RawLine:
    """A JSON line not decoded yet (`iter_rows(lazy=True)`): `decode_line` makes it a
    `RawRow`, a `Rejection` or a `Known`, in whichever process does the work."""

    source: str
    row: int
    line: bytes


@dataclass(frozen=True, slots=True)
class RawSpan:
    """A JSON line of a plain file, not even read (`iter_rows(lazy=True)`): where it
    is. `SpanFiles.read` reads it where the work is done (a worker process), so the
    process that finds the lines never copies one."""

    source: str
    row: int
    offset: int
    length: int


class SpanFiles:
    """Reads `RawSpan`s, keeping the last file open (rows come file by file)."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._fd = -1

    def read(self, span: RawSpan) -> RawLine:
        if span.source != self._path:
            self.close()
            self._fd = os.open(span.source, os.O_RDONLY)
            self._path = span.source
        return RawLine(span.source, span.row, os.pread(self._fd, span.length, span.offset))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._path, self._fd = None, -1


def iter_rows(
    spec: str,
    max_row_bytes: int = DEFAULT_MAX_ROW_MB << 20,
    known: KnownRows | None = None,
    *,
    lazy: bool = False,
) -> Iterator[RawRow | RawLine | RawSpan | Rejection | Known]:
    """Every row of one expanded source, in order. A row larger than `max_row_bytes`
    is a rejection (`row_too_large`), read past in bounded chunks, never held. A JSON
    line `known` knows by its fingerprint is not even decoded (`Known`). With `lazy`,
    the lines of JSON-lines files come undecoded (`RawLine`), or only found (`RawSpan`,
    a plain file's): worker processes read and decode them (`decode_line`), and check
    them against `known` there."""
    if spec.startswith(_HUB_PREFIX):
        yield from _hub_rows(spec)
    elif spec.endswith(_COMPRESSED):
        yield from _compressed_rows(spec, max_row_bytes, known, lazy)
    elif spec == "-":
        yield from _jsonl_rows(sys.stdin.buffer, "-", max_row_bytes, known, lazy)
    elif spec.endswith(".parquet"):
        yield from _parquet_rows(spec, max_row_bytes)
    elif spec.endswith(".json"):
        yield from _json_rows(spec, max_row_bytes, known, lazy)
    elif lazy:
        with open(spec, "rb", buffering=0) as handle:
            yield from _line_spans(handle, spec, max_row_bytes)
    else:
        # A large buffer: a row of megabytes is found in a few reads, not hundreds
        # (1.43 ms -> 0.89 ms a 1.4 MB row).
        with open(spec, "rb", buffering=1 << 20) as handle:
            yield from _jsonl_rows(handle, spec, max_row_bytes, known)


def _open_compressed(spec: str) -> IO[bytes]:
    """A compressed file, decompressed as it is read (never whole)."""
    if spec.endswith(".gz"):
        return cast(IO[bytes], gzip.open(spec, "rb"))
    if spec.endswith(".bz2"):
        return bz2.open(spec, "rb")
    if spec.endswith(".xz"):
        return lzma.open(spec, "rb")
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SourceError(
            f"{spec} is zstd-compressed: decompress it first (zstd -d), or pip install "
            "zstandard to read it as it is"
        ) from None
    return zstandard.open(spec, "rb")  # type: ignore[no-any-return,unused-ignore]


def _compressed_rows(
    spec: str, limit: int, known: KnownRows | None, lazy: bool = False
) -> Iterator[RawRow | RawLine | Rejection | Known]:
    """A compressed JSON-lines file (or a compressed .json file, read as JSON lines),
    streamed. A file that stops decompressing yields its rows so far and one rejection
    for the rest (`invalid_compression`)."""
    row = 0
    try:
        if spec.rsplit(".", 1)[0].endswith(".json"):
            with _open_compressed(spec) as handle:
                data = handle.read(limit + 1)
            if len(data) <= limit:  # small enough to be one JSON document
                yield from _json_data(data, spec, known)
                return
            del data  # too large for one document: read again, as JSON lines
        with _open_compressed(spec) as handle:
            for item in _jsonl_rows(handle, spec, limit, known, lazy):
                row = item.row + 1
                yield item
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
        yield Rejection(
            spec,
            row,
            "invalid_compression",
            f"the file stops decompressing here ({type(exc).__name__}: {exc}); "
            "the rows after it were not read",
        )


def count_rows(spec: str) -> int | None:
    """The number of sessions a source holds when that is cheap to know (a row a
    session), else None: raw OTLP lines group into sessions only when read, so their
    count is not the number of sessions."""
    try:
        if spec.endswith(".parquet"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(spec).metadata.num_rows)
        if (
            spec in ("-",)
            or spec.startswith(_HUB_PREFIX)
            or spec.endswith(".json")
            or spec.endswith(_COMPRESSED)
        ):
            return None
        lines = 0
        last = b"\n"
        with open(spec, "rb") as handle:
            head = handle.read(1 << 16)
            if b'"resourceSpans"' in head or b'"resource_spans"' in head:
                return None  # raw OTLP: lines are not sessions
            handle.seek(0)
            while chunk := handle.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (0 if last == b"\n" else 1)
    except OSError:
        return None


def line_print(line: bytes) -> str:
    """A JSON line's fingerprint, its line ending left out."""
    end = len(line)
    while end and line[end - 1] in b"\r\n":
        end -= 1
    # A view, not a copy: rstrip copied rows of megabytes (0.2 ms a 1.4 MB row).
    return fingerprint(memoryview(line)[:end])


def decode_line(
    line: bytes, source: str, row: int, known: KnownRows | None = None
) -> RawRow | Rejection | Known:
    """One JSON line -> its row (fingerprinted), a rejection, or `Known` (not decoded)."""
    print_ = line_print(line)
    if known is not None:
        number = known(print_)
        if number is not None:
            return Known(source, row, print_, number)
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Rejection(source, row, "invalid_utf8", f"byte {bad.start} is not UTF-8")
        return Rejection(source, row, "invalid_json", str(exc))
    if not isinstance(data, dict):
        return Rejection(
            source, row, "unknown_schema", f"row is a JSON {type(data).__name__}, not an object"
        )
    return RawRow(source, row, data, fingerprint=print_)


def _too_large(source: str, row: int, size: int, limit: int, what: str = "row") -> Rejection:
    return Rejection(
        source,
        row,
        "row_too_large",
        f"the {what} holds {size / (1 << 20):,.0f} MB or more, over --max-row-mb "
        f"{limit >> 20:,}: it was read past, never held",
    )


def _jsonl_rows(
    handle: IO[bytes],
    source: str,
    limit: int,
    known: KnownRows | None = None,
    lazy: bool = False,
) -> Iterator[RawRow | RawLine | Rejection | Known]:
    row = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            size = len(line)
            while True:  # read past the rest of the row, a chunk at a time
                rest = handle.readline(1 << 20)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield _too_large(source, row, size, limit)
        elif not line.isspace():  # strip() would copy a row of many megabytes
            yield RawLine(source, row, line) if lazy else decode_line(line, source, row, known)
        row += 1


#: What `_line_spans` reads at a time.
_SPAN_CHUNK = 4 << 20
#: Anything but the whitespace `bytes.isspace` knows.
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


def _line_spans(handle: IO[bytes], source: str, limit: int) -> Iterator[RawSpan | Rejection]:
    """The lines of a JSON-lines file as spans, found a chunk at a time without a line
    ever being copied, and read as `_jsonl_rows` reads them: blank lines skipped (and
    counted), a line over `limit` bytes rejected (`row_too_large`) with its size."""
    row = offset = length = 0  # the current line: its row, where it starts, its bytes so far
    blank = True
    while True:
        chunk = handle.read(_SPAN_CHUNK)
        if not chunk:
            if length > limit:  # a last line without its newline
                yield _too_large(source, row, length, limit)
            elif length and not blank:
                yield RawSpan(source, row, offset, length)
            return
        position = 0
        while position < len(chunk):
            newline = chunk.find(b"\n", position)
            end = len(chunk) if newline < 0 else newline + 1
            if blank and _NOT_SPACE.search(chunk, position, end) is not None:
                blank = False
            length += end - position
            position = end
            if newline < 0:
                break  # the line goes on in the next chunk
            if length - 1 > limit:
                yield _too_large(source, row, length, limit)
            elif not blank:
                yield RawSpan(source, row, offset, length)
            row += 1
            offset += length
            length = 0
            blank = True


def _json_rows(
    path: str, limit: int, known: KnownRows | None = None, lazy: bool = False
) -> Iterator[RawRow | RawLine | Rejection | Known]:
    """A .json file: one array of rows, one object, or (as on the hub) JSON lines. A
    file over the row limit is read as JSON lines, so its rows stay bounded."""
    if os.path.getsize(path) > limit:
        with open(path, "rb") as handle:
            yield from _jsonl_rows(handle, path, limit, known, lazy)
        return
    yield from _json_data(Path(path).read_bytes(), path, known)


def _json_data(
    data: bytes, path: str, known: KnownRows | None
) -> Iterator[RawRow | Rejection | Known]:
    """The rows of a .json file's content: one array of rows, one object, or JSON
    lines."""
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        for row, item in enumerate(whole):
            if isinstance(item, dict):
                yield RawRow(path, row, item, fingerprint=fingerprint_of(item))
            else:
                yield Rejection(
                    path,
                    row,
                    "unknown_schema",
                    f"row is a JSON {type(item).__name__}, not an object",
                )
    elif isinstance(whole, dict):
        yield RawRow(path, 0, whole, fingerprint=fingerprint(data))
    else:
        for row, line in enumerate(data.splitlines()):
            if line.strip():
                yield decode_line(line, path, row, known)


def _parquet_rows(path: str, limit: int) -> Iterator[RawRow | Rejection]:
    """A Parquet file a few rows at a time, row group by row group. A row group larger
    than a few maximal rows is not read at all (pyarrow would hold it whole): its rows
    are rejected, each with the group's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer (on by default) keeps every column chunk read so far: memory
        # grows with the file. Without it memory stays flat, whatever the file's size.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        row = 0
        for group in range(parquet.metadata.num_row_groups):
            meta = parquet.metadata.row_group(group)
            size = int(meta.total_byte_size)
            if size > _ROW_GROUP_ROWS * limit or size > limit * max(1, meta.num_rows):
                for _ in range(meta.num_rows):
                    yield _too_large(path, row, size, limit, f"row group {group}")
                    row += 1
                continue
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, row_groups=[group]):
                for item in batch.to_pylist():
                    yield RawRow(path, row, item, fingerprint=fingerprint_of(item))
                    row += 1
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"cannot read Parquet file {path}: {exc}") from None


def parse_hub_spec(spec: str) -> tuple[str, str | None, str, str | None]:
    """`hf://OWNER/NAME?config=C&split=S&revision=R` -> (name, config, split, revision)."""
    parts = urlsplit(spec)
    name = (parts.netloc + parts.path).strip("/")
    if name.count("/") != 1 or not all(name.split("/")):
        raise SourceError(f"hub source must look like hf://OWNER/NAME, not {spec}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"config", "split", "revision"}
    if unknown:
        raise SourceError(f"unknown option(s) {', '.join(sorted(unknown))} in {spec}")
    return name, query.get("config"), query.get("split", "train"), query.get("revision")


def _hub_rows(spec: str) -> Iterator[RawRow | Rejection]:
    name, config, split, revision = parse_hub_spec(spec)
    offline = _go_offline_if_unreachable()
    try:
        import datasets

        stream = datasets.load_dataset(name, config, split=split, streaming=True, revision=revision)
        iterator = iter(stream)
        row = 0
        while True:
            item = next(iterator, None)
            if item is None:
                return
            yield RawRow(spec, row, item, hub_config=config, fingerprint=fingerprint_of(item))
            row += 1
    except Exception as exc:
        reason = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        where = "the Hugging Face Hub is unreachable (offline mode)" if offline else "hub error"
        raise SourceError(
            f"cannot stream {name} (config={config}, split={split}): {where}: "
            f"{type(exc).__name__}: {reason[:300]}"
        ) from None


def _go_offline_if_unreachable(timeout: float = 3.0) -> bool:
    """Switch the hub client to offline mode when its endpoint can't be reached.

    Without this, `datasets` retries for about 20 s before failing; with the switch
    set it fails at once (or reads from the local cache). Returns whether offline.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except OSError:
        pass
    os.environ["HF_HUB_OFFLINE"] = "1"
    # The libraries read the variable when imported; set their flags too in case
    # they already were.
    for module, attribute in (
        ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_HUB_OFFLINE"),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, attribute):
            setattr(loaded, attribute, True)
    return True
