"""What the judges read: each session's rendered user message, kept once per run.

In: from the engine, a session it asks judges about, and the user message of its
first request (the task and the transcript as rendered: tool calls, results, errors,
omission markers and the enclosure), the run's credentials already removed. Out:
`OUT/transcripts.jsonl`, one line per session asked about in a run: `session_id`, the
session's `source`, `row` and `format`, `chars`, `sha1` of the text and `zlib` (the
text, zlib-compressed, base64). Lines are appended and fsync'd with the journal
records they belong to, before those records, and every record carries the text's
`digest` (the enclosure's random marker aside): a session asked again in a later run
(a resume, --retry-failed, a judge added) whose text is the same gets no new line; one
whose text changed (a new rubric or prompt version) gets one, and the latest is shown.

The judges of a panel read the same message but for their enclosure's random
boundary marker: the first judge's is kept. `show OUT --session ID` and
`report OUT --html` read it back; `journal verify` checks every line's digest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .files import UnsafePath, open_state
from .journal import JournalError

FILE = "transcripts.jsonl"


@dataclass(frozen=True)
class Transcript:
    """One session's kept user message (compressed), and where the session came from."""

    session_id: str
    source: str
    row: int
    format: str
    chars: int
    sha1: str
    #: The text, zlib-compressed and base64-encoded, as stored.
    zlib: str

    def text(self) -> str:
        return zlib.decompress(base64.b64decode(self.zlib)).decode("utf-8")


def digest(text: str, marker: str) -> str:
    """What a text is for keeping it once: its sha1 with the enclosure's random marker
    taken out (each request has its own), 16 hex digits."""
    data = (text.replace(marker, "") if marker else text).encode("utf-8")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16]


def prepare(
    request_body: dict[str, Any],
    marker: str,
    session_id: str,
    source: tuple[str, int, str],
    scrub: Callable[[str], str],
) -> tuple[str, bytes]:
    """What the judges read of one session (a request's last message), without the
    run's credentials: its `digest` and its line (`encode`: the session's `source`
    file, row and format), made once wherever the request was rendered."""
    text = read_text(request_body, scrub)
    file, row, fmt = source
    return digest(text, marker), encode(session_id, scrub(file), row, fmt, text)


def read_text(request_body: dict[str, Any], scrub: Callable[[str], str]) -> str:
    """What the judges read in a request body (its last message), scrubbed."""
    messages = request_body.get("messages") or [{}]
    return scrub(str(messages[-1].get("content", "")))


def encode(session_id: str, source: str, row: int, fmt: str, text: str) -> bytes:
    """The line of one session's message (compressed: a worker thread's work)."""
    data = text.encode("utf-8")
    return (
        orjson.dumps(
            {
                "session_id": session_id,
                "source": source,
                "row": row,
                "format": fmt,
                "chars": len(text),
                "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                # Level 1: a fifth of level 6's CPU (0.8 ms against 4.6 ms for an 83 KB
                # message) for a quarter more bytes; kept text is read rarely.
                "zlib": base64.b64encode(zlib.compress(data, 1)).decode("ascii"),
            }
        )
        + b"\n"
    )


class TranscriptLog:
    """The append side of `OUT/transcripts.jsonl`."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / FILE
        self._handle: IO[bytes] | None = None

    def append(self, lines: Sequence[bytes]) -> None:
        """Append lines and make them durable (before the journal records they serve)."""
        if not lines:
            return
        try:
            if self._handle is None:
                _cut_torn_tail(self.path)
                self._handle = open_state(self.path, "ab")  # kept for the run
            self._handle.write(b"".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except UnsafePath as exc:
            raise JournalError(str(exc)) from None
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


def _cut_torn_tail(path: Path) -> None:
    """A line a kill left without its newline is cut, so the next starts clean."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return
            start = max(0, size - (1 << 20))
            handle.seek(start)
            tail = handle.read()
            cut = tail.rfind(b"\n")
            handle.truncate(start + cut + 1 if cut >= 0 else 0 if start == 0 else size)
    except FileNotFoundError:
        return


def _parse(line: bytes) -> Transcript | str:
    """A line as a transcript, or what is wrong with it."""
    try:
        data: Any = orjson.loads(line)
        item = Transcript(
            str(data["session_id"]),
            str(data["source"]),
            int(data["row"]),
            str(data["format"]),
            int(data["chars"]),
            str(data["sha1"]),
            str(data["zlib"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "does not parse"
    return item


def read(out_dir: Path) -> Iterator[Transcript]:
    """Every intact line, in order (a later line of a session replaces an earlier)."""
    path = out_dir / FILE
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                item = _parse(line)
                if isinstance(item, Transcript):
                    yield item


def latest(out_dir: Path) -> dict[str, Transcript]:
    """Each session's latest kept message."""
    return {item.session_id: item for item in read(out_dir)}


def find(out_dir: Path, session_id: str) -> Transcript | None:
    """One session's latest kept message, or None."""
    found = None
    for item in read(out_dir):
        if item.session_id == session_id:
            found = item
    return found


def check(out_dir: Path) -> tuple[int, list[str]]:
    """Lines checked, and problems: a line that does not parse, or whose text does not
    decompress to its digest (an edited or corrupted line)."""
    path = out_dir / FILE
    if not path.exists():
        return 0, []
    problems: list[str] = []
    count = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                continue  # torn by a kill: the next run cuts it
            count += 1
            item = _parse(line)
            if isinstance(item, str):
                problems.append(f"{FILE} line {number} {item}")
                continue
            try:
                data = item.text().encode("utf-8")
            except (ValueError, zlib.error, UnicodeDecodeError):
                problems.append(f"{FILE} line {number} ({item.session_id}): text does not decode")
                continue
            if hashlib.sha1(data, usedforsecurity=False).hexdigest() != item.sha1:
                problems.append(f"{FILE} line {number} ({item.session_id}): digest differs")
    return count, problems
