"""Credential shapes found in text, replaced by a `[REDACTED:kind]` marker.

In: any text (a trace, an error message). Out: the same text with API keys, bearer
tokens, cloud keys, private keys and credentials in URLs replaced, and a count.

Each pattern is tried only when one of its trigger substrings occurs, and the
triggers are looked for once over all the texts of a request, so clean text (the
common case) costs one lower-casing and a few fast substring scans, no regex pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str
    #: Lower-case substrings, one of which must occur for the pattern to be tried.
    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    #: The group to replace (0: the whole match).
    group: int = 0


_SHAPES: tuple[_Shape, ...] = (
    _Shape(
        "private-key",
        ("-----begin",),
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
    ),
    _Shape(
        "jwt", ("eyj",), re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
    ),
    _Shape("api-key", ("sk-",), re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{19,}")),
    _Shape("stripe-key", ("k_live_", "k_test_"), re.compile(r"\b[rsp]k_(?:live|test)_\w{16,}")),
    _Shape("aws-access-key", ("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    _Shape(
        "aws-secret-key",
        ("aws_secret", "secretaccesskey", "aws-secret"),
        re.compile(
            r"(?i)aws[_-]?secret[_-]?access[_-]?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})"
        ),
        group=1,
    ),
    _Shape(
        "github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_\w{30,}")
    ),
    _Shape("github-token", ("github_pat_",), re.compile(r"\bgithub_pat_\w{22,}")),
    _Shape("google-api-key", ("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    _Shape("slack-token", ("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    _Shape("hf-token", ("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    _Shape(
        "bearer-token",
        ("bearer",),
        re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{12,}=*)"),
        group=1,
    ),
    _Shape(
        "basic-auth",
        ("authorization",),
        re.compile(r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?basic\s+([A-Za-z0-9+/]{8,}=*)"),
        group=1,
    ),
    _Shape(
        "url-credentials",
        ("://",),
        re.compile(r"://([^\s/:@\"'<>]+:[^\s/@\"'<>]+)@"),
        group=1,
    ),
    _Shape(
        "secret",
        # The key names the pattern needs, not bare "key" or "token": those are in
        # most code traces and would send every text through the regex.
        (
            "api_key",
            "api-key",
            "apikey",
            "secret",
            "access_token",
            "access-token",
            "accesstoken",
            "auth_token",
            "auth-token",
            "authtoken",
            "password",
            "passwd",
        ),
        re.compile(
            r"(?i)\b(?:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?token"
            r"|auth[_-]?token|password|passwd)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{12,})"
        ),
        group=1,
    ),
)


def redact(text: str) -> tuple[str, int]:
    """Replace every credential shape in `text`; return the new text and how many."""
    texts, count = redact_many([text])
    return texts[0], count


def redact_many(texts: list[str]) -> tuple[list[str], int]:
    """`redact` over several texts, looking for the triggers once over all of them."""
    joined = "\x00".join(texts).lower()
    shapes = []
    for shape in _SHAPES:  # plain loops: on short texts a generator costs more than the scan
        for trigger in shape.triggers:
            if trigger in joined:
                shapes.append(shape)
                break
    if not shapes:
        return texts, 0
    out: list[str] = []
    total = 0
    for text in texts:
        lowered = text.lower()
        for shape in shapes:
            if any(t in lowered for t in shape.triggers):
                text, count = _apply(shape, text)
                total += count
        out.append(text)
    return out, total


def _apply(shape: _Shape, text: str) -> tuple[str, int]:
    marker = f"[REDACTED:{shape.kind}]"
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        if shape.group == 0:
            return marker
        whole = match.group(0)
        start = match.start(shape.group) - match.start(0)
        end = match.end(shape.group) - match.start(0)
        return whole[:start] + marker + whole[end:]

    return shape.pattern.sub(replace, text), count


def redact_text(text: str) -> str:
    """`redact` without the count, for error messages."""
    return redact(text)[0]
