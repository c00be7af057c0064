"""Base URLs: the chat-completions endpoint they name, and how to print them.

In: a base URL as the user gave it. Out: the endpoint's URL with the credentials it
carried as an Authorization value (`endpoint_url`), or a URL fit to print
(`safe_url`). Apart from `client` so that configuration and the worker processes
check and print URLs without importing the HTTP client.
"""

from __future__ import annotations

from yarl import URL

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _basic(user: str, password: str) -> str:
    """An HTTP Basic Authorization value, by aiohttp's own encoder."""
    import aiohttp  # here: what only prints or checks a URL never loads an HTTP client

    encode = getattr(aiohttp, "encode_basic_auth", None)
    if encode is not None:  # aiohttp 3.13 and later
        return str(encode(user, password))
    return str(aiohttp.BasicAuth(user, password).encode())


def endpoint_url(base_url: str) -> tuple[URL, str | None]:
    """The chat-completions URL for a base URL, and the Authorization value of the
    credentials it carried, if any."""
    url = URL(base_url.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base URL must be http(s)://host/..., not {safe_url(base_url)}")
    auth = None
    if url.user is not None:
        auth = _basic(url.user, url.password or "")
        url = url.with_user(None).with_password(None)
    path = url.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return url.with_path(path), auth


def safe_url(base_url: str) -> str:
    """A URL fit to print: no credentials, no query."""
    try:
        url = URL(base_url)
        return str(url.with_user(None).with_password(None).with_query(None))
    except (ValueError, TypeError):
        return "(unparseable URL)"
