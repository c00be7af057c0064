"""Files the engine reads and writes besides its sources, handled so that no path can
hang, flood or destroy anything.

In: paths. Out: the bytes of small files the user names (a config, a rubric, labels),
read only when they are regular files and under a cap; state files of a results folder
opened without following symbolic links; whole files written atomically (a temporary
file, fsync'd, renamed), so that a full disk or a kill never leaves one empty or torn;
and the check that an output path does not resolve to a results folder's state or a
run's source.

Every refusal is an `UnsafePath` (a `ValueError`): one line naming the path and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, cast

#: The most a config or a rubric file may hold; and a labels file.
SMALL_FILE = 1 << 20
TABLE_FILE = 64 << 20
#: A results folder's state: the files a run keeps and reads back, by name. Output
#: paths may never resolve to one of these inside a results folder, and the engine
#: never writes one through a symbolic link.
STATE_FILES = frozenset(
    {
        "journal.jsonl",
        "transcripts.jsonl",
        "batches.jsonl",
        "anthropic-batches.jsonl",
        "scores.jsonl",
        "rejected.jsonl",
        "run.json",
        "summary.json",
        ".journal-index",
        ".scores-state",
        "last-request",
        ".judge-engine.lock",
    }
)
#: Journals and logs a --fresh set aside: state too (paid verdicts).
_SET_ASIDE = re.compile(
    r"^(?:(journal|transcripts|batches|anthropic-batches)-\d{8}-\d{6}.*\.jsonl"
    r"|last-request-[0-9a-f]{8})$"
)


class UnsafePath(ValueError):
    """A path the engine will not read or write: one line saying why."""


def is_results_folder(folder: Path) -> bool:
    """Whether a folder is a judge-engine results folder (its lock file or journal)."""
    return (folder / ".judge-engine.lock").exists() or (folder / "journal.jsonl").exists()


def is_state_name(name: str) -> bool:
    return name in STATE_FILES or bool(_SET_ASIDE.match(name))


def read_small(path: str | os.PathLike[str], what: str, cap: int = SMALL_FILE) -> bytes:
    """The bytes of a file the user names for `what` (e.g. "--config"): a regular file
    (not a folder, a device such as /dev/zero, a FIFO or a socket), at most `cap`
    bytes; else `UnsafePath`. `OSError` for a file that cannot be opened."""
    name = os.fspath(path)
    info = os.stat(name)
    if not stat.S_ISREG(info.st_mode):
        kind = _kind(info.st_mode)
        raise UnsafePath(f"{what} {name} is {kind}, not a regular file")
    if info.st_size > cap:
        raise UnsafePath(f"{what} {name} holds {_size(info.st_size)}, more than {_size(cap)}")
    # O_NONBLOCK: were it swapped for a FIFO since the check, opening must not hang.
    descriptor = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UnsafePath(f"{what} {name} is not a regular file")
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise UnsafePath(f"{what} {name} holds more than {_size(cap)}")
    return data


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MB" if size >= 1 << 20 else f"{size:,} bytes"


def refuse_symlink(path: Path) -> None:
    """A state file must not be a symbolic link: writing through one could overwrite
    anything the link points to (`UnsafePath`)."""
    if path.is_symlink():
        raise UnsafePath(
            f"{path} is a symbolic link; a results folder's state files are never written "
            "through one: remove the link"
        )


def open_state(path: Path, mode: str) -> IO[bytes]:
    """A state file opened for `mode` ("ab" append, "rb+" update, "wb" create or
    truncate, "rb" read), never through a symbolic link (`O_NOFOLLOW`: a link is
    refused with `UnsafePath`)."""
    flags = {
        "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
        "rb+": os.O_RDWR,
        "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "rb": os.O_RDONLY,
    }[mode]
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            refuse_symlink(path)
        raise
    return cast(IO[bytes], os.fdopen(descriptor, mode))


def refuse_state_links(out_dir: Path) -> None:
    """No state file of a results folder may be a symbolic link (`UnsafePath`)."""
    for name in STATE_FILES:
        refuse_symlink(out_dir / name)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file: a temporary file beside it, fsync'd, renamed over it. A full
    disk or a kill leaves the old file or the new one, never an empty or torn one.
    The target may not be a symbolic link (`UnsafePath`)."""
    refuse_symlink(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644
        )
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def check_output(path: str | os.PathLike[str], what: str, sources: Iterable[str] = ()) -> Path:
    """An output path the user names (a report, an export, a JSON file): refused with
    `UnsafePath` when it resolves (through symbolic links too) to a state file of a
    results folder, or to one of `sources`. Returns the path as given."""
    target = Path(path)
    resolved = target.resolve()
    if is_state_name(resolved.name) and is_results_folder(resolved.parent):
        raise UnsafePath(
            f"{what} {target} would overwrite {resolved.name}, a file of the results folder "
            f"{resolved.parent}: choose another name"
        )
    for source in sources:
        if source == "-" or source.startswith("hf://"):
            continue
        with contextlib.suppress(OSError):
            if resolved == Path(source).resolve() or (
                resolved.exists() and os.path.samefile(resolved, source)
            ):
                raise UnsafePath(f"{what} {target} is one of the run's sources: choose another")
    return target


__all__ = [
    "SMALL_FILE",
    "STATE_FILES",
    "TABLE_FILE",
    "UnsafePath",
    "check_output",
    "is_results_folder",
    "is_state_name",
    "open_state",
    "read_small",
    "refuse_state_links",
    "refuse_symlink",
    "write_atomic",
]
