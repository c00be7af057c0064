"""The usual hand-written judge loops, for bench/side_by_side.py.

    python bench/clients.py sequential|threads|openai SESSIONS.jsonl URL OUT.jsonl

All three read the sessions and render the request bodies with judge-engine's own code,
so every client sends identical bodies and the comparison is of what sends them:
- sequential: a `requests` loop, one request at a time (what most guides show);
- threads: the same calls from a thread pool of 64;
- openai: the official AsyncOpenAI client under an asyncio semaphore of 64.
Each parses the verdict and appends it to OUT.jsonl; none retries beyond its library's
defaults, paces, journals durably or guards against self-grading.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from judge_engine.prompt import render_request
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import Session, read_sessions
from judge_engine.verdict import parse_verdict

KEY = "sk-bench-not-a-real-key"
JUDGE = "gpt-4.1"
CONCURRENCY = 64


def bodies(source: str) -> list[dict[str, Any]]:
    rubrics = RubricSet.load()
    return [
        render_request(s, rubrics.for_benchmark(s.benchmark), JUDGE).body
        for s in read_sessions([source])
        if isinstance(s, Session)
    ]


def _record(body: dict[str, Any], content: str) -> bytes:
    verdict = parse_verdict(content)
    return orjson.dumps({"model": body["model"], "success": verdict.success}) + b"\n"


def sequential(source: str, url: str, out: Path) -> None:
    import requests

    with requests.Session() as http, open(out, "wb") as sink:
        for body in bodies(source):
            reply = http.post(
                f"{url}/chat/completions",
                json=body,
                timeout=120,
                headers={"Authorization": f"Bearer {KEY}"},
            )
            reply.raise_for_status()
            sink.write(_record(body, reply.json()["choices"][0]["message"]["content"]))


def threads(source: str, url: str, out: Path) -> None:
    import requests

    local = threading.local()

    def call(body: dict[str, Any]) -> bytes:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        reply = local.http.post(
            f"{url}/chat/completions",
            json=body,
            timeout=120,
            headers={"Authorization": f"Bearer {KEY}"},
        )
        reply.raise_for_status()
        return _record(body, reply.json()["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(CONCURRENCY) as pool, open(out, "wb") as sink:
        for line in pool.map(call, bodies(source)):
            sink.write(line)


def openai_async(source: str, url: str, out: Path) -> None:
    from openai import AsyncOpenAI

    async def main() -> None:
        client = AsyncOpenAI(base_url=url, api_key=KEY)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def call(body: dict[str, Any]) -> bytes:
            async with gate:
                reply = await client.chat.completions.create(**body)
            return _record(body, reply.choices[0].message.content or "")

        lines = await asyncio.gather(*(call(b) for b in bodies(source)))
        out.write_bytes(b"".join(lines))  # noqa: ASYNC240 - once, at the end, as such scripts do
        await client.close()

    asyncio.run(main())


if __name__ == "__main__":
    approach, source, url, out = sys.argv[1:5]
    {"sequential": sequential, "threads": threads, "openai": openai_async}[approach](
        source, url, Path(out)
    )
