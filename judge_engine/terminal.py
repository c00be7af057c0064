"""What reaches a terminal: text from traces, gateways and files, made inert.

In: text to print (session ids, benchmark, harness and model names, a gateway's status
strings and error messages, file names, transcripts). Out: the same text with every
C0 and C1 control character (but newline and tab) and every bidirectional control
escaped as `\\uXXXX`, so that no field can move the cursor, clear the screen, set the
window title, or reorder what a person reads (a right-to-left override making
`exe.txt` of `txt.exe`). The escapes are valid inside JSON strings, so JSON printed to
stdout stays valid and decodes to the exact text; JSON written to files is untouched.

`install()` wraps stdout and stderr for the length of a command; the progress bar
draws on the raw stream (it needs its carriage return) with its figures escaped here.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

#: Bidirectional controls: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_BIDI)


def _table(keep: str) -> dict[int, str]:
    return {code: f"\\u{code:04x}" for code in _CONTROLS if chr(code) not in keep}


#: Lines of text: newline and tab pass.
_TEXT = _table("\n\t")
#: One field on one line (a progress figure, a cell): nothing passes.
_FIELD = _table("")


def escape(text: str) -> str:
    """Text for the terminal: controls but newline and tab escaped (module docstring)."""
    return text.translate(_TEXT)


def escape_field(text: str) -> str:
    """One field that must stay on its line: newlines and tabs escaped too."""
    return text.translate(_FIELD)


class EscapingStream(io.TextIOBase):
    """A text stream that escapes what it is given before it writes it on."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(text.translate(_TEXT))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def buffer(self) -> Any:
        """The binary stream beneath: bytes (an export to stdout) pass as they are."""
        return self.inner.buffer


def raw(stream: TextIO) -> TextIO:
    """The stream beneath an `EscapingStream` (the progress bar's own)."""
    return stream.inner if isinstance(stream, EscapingStream) else stream


@contextmanager
def install() -> Iterator[None]:
    """stdout and stderr escaped for the length of the block (a command's run)."""
    saved = sys.stdout, sys.stderr
    sys.stdout = EscapingStream(saved[0])
    sys.stderr = EscapingStream(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.flush()
        sys.stdout, sys.stderr = saved


__all__ = ["EscapingStream", "escape", "escape_field", "install", "raw"]
