"""The transport seam: the engine grades through any object that keeps the `Transport`
protocol, with no HTTP and no change to the engine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson

from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.gateway import GatewayError, GatewayStats, RateInfo, Reply
from judge_engine.testing import synth
from tests.conftest import read_jsonl, write_jsonl


class InProcess:
    """A transport that answers in process: every verdict is 1, except that the first
    request of each session gets a 503 (retryable) once."""

    printable_url = "in-process"

    def __init__(self) -> None:
        self.stats = GatewayStats()
        self.bodies: list[dict[str, object]] = []
        self.refused: set[str] = set()

    @property
    def in_flight(self) -> int:
        return 0

    async def send(
        self,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> Reply:
        data = orjson.loads(body)
        self.stats.sent += 1
        user = data["messages"][1]["content"]
        if user not in self.refused:
            self.refused.add(user)
            raise GatewayError("server_error", "try again", status=503, retryable=True)
        self.bodies.append(data)
        verdict = {"success": 1, "confidence": "high", "reasoning": "in process"}
        return Reply(
            200,
            {
                "model": data["model"],
                "choices": [
                    {
                        "message": {"role": "assistant", "content": orjson.dumps(verdict).decode()},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": estimated_tokens, "completion_tokens": 20},
            },
            1.0,
            RateInfo(),
        )

    def stop_sending(self) -> None:
        pass

    def backoff(self, attempt: int, hint_s: float | None) -> float:
        return 0.0

    def status(self) -> str:
        return ""


async def test_the_engine_grades_through_a_transport_it_is_given(tmp_path: Path) -> None:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(5)]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    transport = InProcess()
    config = Config.of(
        sources=(source,),
        judge=("gpt-4.1", "o3"),
        base_url="http://127.0.0.1:9/v1",  # nothing listens: the transport is all there is
        out=tmp_path / "out",
        quiet=True,
    )
    result, _ = await grade(config, "key", transport=transport)
    assert result.status == "done", result.message
    assert result.verdicts == 10 and result.retries == 10
    assert {b["model"] for b in transport.bodies} == {"gpt-4.1", "o3"}
    assert len(read_jsonl(tmp_path / "out" / "scores.jsonl")) == 10
