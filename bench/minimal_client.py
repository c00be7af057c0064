"""The bare minimum a grader must do per session, as a yardstick for the engine's CPU:
parse each row once, make one HTTP request of about the engine's size, parse the reply.

    python bench/minimal_client.py SESSIONS.jsonl URL [--concurrency 64]

The body carries the row's last LLM call input (what the transcript is made of), so the
bytes on the wire are close to the engine's; no rubric, no rendering, no retries, no
journal, nothing durable.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import orjson


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=args.concurrency * 2)
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while (line := await queue.get()) is not None:
            row = orjson.loads(line)
            content = row["spans"][-1]["attributes"]["gen_ai.input.messages"]
            body = orjson.dumps(
                {
                    "model": "gpt-4.1",
                    "messages": [
                        {"role": "system", "content": "Grade this."},
                        {"role": "user", "content": content},
                    ],
                }
            )
            async with session.post(
                args.url + "/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as reply:
                orjson.loads(await reply.read())
            done += 1

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": "Bearer x"}
    ) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(args.concurrency)]
        with open(args.source, "rb") as handle:  # noqa: ASYNC230 - the minimum, deliberately
            for line in handle:
                await queue.put(line)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    print(done)


if __name__ == "__main__":
    asyncio.run(main())
