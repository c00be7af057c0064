"""Binary content never reaches the judge as text: it becomes a short marker.

In: text (a tool output, a message, a data URL) or a binary part's fields. Out: the
text with every data URL and long base64 run replaced by a marker such as
`[image: image/png, 59 KB]`, and how many were replaced.

A base64 run is at least `MIN_RUN` characters of the base64 alphabet on one line, or
wrapped in lines of 40 characters or more, that mixes upper case, lower case and
digits, as encoded binary does (a word list, a hex digest or a DNA string does not).
Looking for runs costs one byte translation and one substring search per text; the
regular expression runs only where the search found a candidate.
"""

from __future__ import annotations

import re

#: The shortest base64 run taken for binary data (about 190 bytes encoded).
MIN_RUN = 256
#: Bytes of the base64 alphabet (and line breaks) mapped to "a", the rest to " ".
_TABLE = bytes(
    0x61 if (chr(i).isascii() and (chr(i).isalnum() or chr(i) in "+/=\r\n")) else 0x20
    for i in range(256)
)
_NEEDLE = b"a" * MIN_RUN
_DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,"
    r"(?:\[base64_data truncated: (?P<truncated>[\d.]+) ?KB\]|(?P<data>[A-Za-z0-9+/=\r\n]*))"
)
#: Wrapped base64 (lines of 40 or more, the last maybe shorter), or one long line.
_RUN = re.compile(
    r"(?:[A-Za-z0-9+/]{40,}={0,2}\r?\n){2,}[A-Za-z0-9+/]*={0,2}"
    rf"|[A-Za-z0-9+/]{{{MIN_RUN},}}={{0,2}}"
)
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_DIGIT = re.compile(r"[0-9]")


def size_text(size_bytes: float) -> str:
    """A byte count as people read it: 812 B, 59 KB, 3.2 MB."""
    if size_bytes < 1000:
        return f"{int(size_bytes)} B"
    if size_bytes < 1_000_000:
        return f"{round(size_bytes / 1000):,} KB"
    return f"{size_bytes / 1_000_000:.1f} MB"


def decoded_size(encoded: str) -> int:
    """Bytes a base64 text decodes to (whitespace ignored)."""
    length = len(encoded) - encoded.count("\n") - encoded.count("\r")
    return max(0, length * 3 // 4 - encoded[-2:].count("="))


def kind_of(mime: str | None, modality: str | None = None) -> str:
    """image, audio, video or file: what a marker calls a binary part."""
    for value in (modality, (mime or "").split("/", 1)[0]):
        if value in ("image", "audio", "video"):
            return value
    return "file"


def marker(
    kind: str, mime: str | None = None, size: int | None = None, name: str | None = None
) -> str:
    """`[image: image/png, 59 KB]`: what stands in for a binary part."""
    details = [d for d in (name, mime, size_text(size) if size is not None else None) if d]
    return f"[{kind}: {', '.join(details)}]" if details else f"[{kind}]"


def _data_url_marker(match: re.Match[str]) -> str:
    mime = match.group("mime")
    if match.group("truncated") is not None:
        size = int(float(match.group("truncated")) * 1000)
        return marker(kind_of(mime), mime, size, None)[:-1] + ", cut short in the trace]"
    return marker(kind_of(mime), mime, decoded_size(match.group("data") or ""))


def _is_binary_run(run: str) -> bool:
    if len(run) - run.count("\n") - run.count("\r") < MIN_RUN:
        return False
    return bool(_UPPER.search(run) and _LOWER.search(run) and _DIGIT.search(run))


def _run_marker(run: str) -> str | None:
    """The marker for a candidate run, or None when it is not binary data."""
    if not _is_binary_run(run):
        return None
    stripped = run.rstrip("\r\n")
    return f"[base64 data: {size_text(decoded_size(stripped))}]{run[len(stripped) :]}"


def _candidates(text: str) -> bool:
    """Whether `text` may hold a data URL or a base64 run (one translation, one search)."""
    return "base64," in text or (
        len(text) >= MIN_RUN and _NEEDLE in text.encode("utf-8", "replace").translate(_TABLE)
    )


def scrub(text: str) -> tuple[str, int]:
    """`text` with data URLs and base64 runs replaced by markers; how many were."""
    if not _candidates(text):
        return text, 0
    count = 0

    def data_url(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return _data_url_marker(match)

    def run(match: re.Match[str]) -> str:
        nonlocal count
        replaced = _run_marker(match.group(0))
        if replaced is None:
            return match.group(0)
        count += 1
        return replaced

    text = _DATA_URL.sub(data_url, text)
    text = _RUN.sub(run, text)
    return text, count


def scrub_many(texts: list[str]) -> tuple[list[str], int]:
    """`scrub` over several texts, looked through once: texts with neither a data URL
    nor a candidate run anywhere (the common case) come back as they are."""
    if not _candidates("\x00".join(texts)):  # NUL is outside the alphabet: no run spans two
        return texts, 0
    scrubbed = [scrub(text) for text in texts]
    return [text for text, _ in scrubbed], sum(count for _, count in scrubbed)


def looks_binary(value: str) -> bool:
    """Whether a whole string is a data URL or base64 data (a part's payload)."""
    if value.startswith("data:") and ";base64," in value[:200]:
        return True
    return len(value) >= MIN_RUN and _RUN.fullmatch(value) is not None and _is_binary_run(value)
