"""Credential shapes are found and replaced; ordinary text is left alone."""

from __future__ import annotations

import pytest

from judge_engine.redact import redact

SECRETS = [
    ("sk-proj-" + "Ab3dEf6hIj" * 4, "api-key"),
    ("sk-ant-api03-" + "Zz9_" * 10, "api-key"),
    ("AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
    ("ghp_" + "a" * 36, "github-token"),
    ("github_pat_" + "b" * 30, "github-token"),
    ("AIza" + "c" * 35, "google-api-key"),
    ("xoxb-1234567890-abcdefghij", "slack-token"),
    ("hf_" + "d" * 34, "hf-token"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXZhbHVl", "jwt"),
    ("sk_live_" + "e" * 24, "stripe-key"),
]


@pytest.mark.parametrize(("secret", "kind"), SECRETS)
def test_known_shapes_are_redacted(secret: str, kind: str) -> None:
    text, count = redact(f"before {secret} after")
    assert secret not in text
    assert f"[REDACTED:{kind}]" in text
    assert text.startswith("before ") and text.endswith(" after")
    assert count == 1


def test_contextual_shapes_keep_their_context() -> None:
    text, count = redact(
        "Authorization: Bearer abcdefghijklmnop123456\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
        "https://admin:hunter2hunter2@db.example.com/x\n"
        'password="correct-horse-battery"\n'
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    )
    assert "Authorization: Bearer [REDACTED:bearer-token]" in text
    assert "aws_secret_access_key = [REDACTED:aws-secret-key]" in text
    assert "https://[REDACTED:url-credentials]@db.example.com/x" in text
    assert 'password="[REDACTED:secret]"' in text
    assert "MIIEow" not in text
    assert count == 5


def test_ordinary_text_is_untouched() -> None:
    plain = (
        "The tokenizer splits tokens; the password field is empty; sk- prefix; "
        "https://example.com/path ; Bearer of bad news; key = 3"
    )
    assert redact(plain) == (plain, 0)


@pytest.mark.parametrize("padding", [0, 5000, 200_000])
def test_short_and_long_texts_are_searched_alike(padding: int) -> None:
    """Short texts are searched without the automaton (it lets go of the GIL on every
    search); every shape is found the same at every length, in a text of several
    parts, with non-ASCII text around it."""
    filler = ("ordinary words, é ü 中文 " * (padding // 24 + 1))[:padding]
    parts = [f"{filler}before {secret} after" for secret, _ in SECRETS]
    parts.append(f"{filler}Authorization: Bearer abcdefghijklmnop123456")
    parts.append(f'{filler}DB_PASSWORD="correct-horse-battery"')
    text, count = redact("\n".join(parts))
    assert count == len(SECRETS) + 2
    for secret, kind in SECRETS:
        assert secret not in text
        assert f"before [REDACTED:{kind}] after" in text
    assert "Bearer [REDACTED:bearer-token]" in text
    assert 'DB_PASSWORD="[REDACTED:secret]"' in text
