"""Any judge from any provider: judges named with their provider, each with its own
endpoint, key and limits; requests shaped as each provider accepts them; replies of
every kind read right. Every request goes to a simulator mode that refuses what that
provider documents it refuses, with its error shapes; the official SDKs hold the modes'
replies to their types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from judge_engine.config import Config, ConfigError
from judge_engine.endpoints import resolve_judges
from judge_engine.engine import grade
from judge_engine.gateway.errors import GatewayError
from judge_engine.gateway.profiles import ProfileError, learn, profile_for
from judge_engine.gateway.providers import PROVIDERS, resolve, with_overrides
from judge_engine.testing import synth
from judge_engine.testing.providers import MODES, strict_schema_problem
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLES = ROOT / "judge_engine" / "samples"
KEYS = {
    "OPENAI_API_KEY": "sk-openai-" + "o" * 24,
    "ANTHROPIC_API_KEY": "sk-ant-" + "a" * 24,
    "GEMINI_API_KEY": "gm-" + "g" * 30,
    "AZURE_OPENAI_API_KEY": "az" + "z" * 30,
}


def _source(tmp_path: Path, count: int = 3, **kwargs: Any) -> str:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i, **kwargs) for i in range(count)]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _config(source: str, out: Path, *judges: str, **changes: Any) -> Config:
    return Config.of(
        sources=(source,), judge=judges, out=out, quiet=True, backoff_base=0.01, **changes
    )


# --- who serves a judge -------------------------------------------------------------


def test_judges_resolve_to_their_providers() -> None:
    table = PROVIDERS
    env: dict[str, str] = {}
    claude = resolve("anthropic/claude-sonnet-4-5", table, environ=env)
    assert (claude.provider.name, claude.model, claude.base_url) == (
        "anthropic", "claude-sonnet-4-5", "https://api.anthropic.com/v1",
    )  # fmt: skip
    colon = resolve("openai:gpt-4.1", table, environ=env)
    assert (colon.provider.name, colon.model) == ("openai", "gpt-4.1")
    nested = resolve("openrouter/anthropic/claude-sonnet-4.5", table, environ=env)
    assert (nested.provider.name, nested.model) == ("openrouter", "anthropic/claude-sonnet-4.5")
    # A bare name: the gateway when a base URL is given, else the vendor its name says.
    gateway = resolve("gpt-4.1", table, base_url="http://127.0.0.1:1/v1", environ=env)
    assert gateway.provider.name == "openai-compatible" and gateway.model == "gpt-4.1"
    for name, vendor in (("claude-opus-4-5", "anthropic"), ("gemini-2.5-pro", "google"),
                         ("o3", "openai"), ("gpt-5-mini", "openai")):  # fmt: skip
        judge = resolve(name, table, environ=env)
        assert judge.provider.name == vendor and "says its vendor" in judge.chosen
    # A deployment prefix that is no provider stays part of the name, for the gateway.
    assert resolve("Az/gpt-4.1", table, base_url="http://x/v1", environ=env).model == "Az/gpt-4.1"
    # Azure from its endpoint variable, in both URL styles.
    azure = resolve(
        "azure/my-deploy", table, environ={"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}
    )
    assert azure.base_url == "https://r.openai.azure.com/openai/v1"
    dated = with_overrides({"azure": {"api_version": "2024-10-21"}})
    azure = resolve(
        "azure/my-deploy", dated, environ={"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}
    )
    assert azure.base_url == "https://r.openai.azure.com/openai"
    with pytest.raises(ValueError, match="AZURE_OPENAI_ENDPOINT"):
        resolve("azure/x", table, environ={})


def test_overrides_from_flags_and_config_files(tmp_path: Path) -> None:
    from judge_engine.cli._common import read_config_file

    config = tmp_path / "judge.toml"
    config.write_text(
        '[providers.anthropic]\nbase_url = "http://127.0.0.1:9/v1"\nrpm = 50\n'
        '[providers.anthropic.headers]\nanthropic-beta = "x"\n'
        '[providers.house]\nbase_url = "http://127.0.0.1:8/v1"\napi_key_env = "HOUSE_KEY"\n'
    )
    values = read_config_file(str(config))
    built = Config.of(**values, judge=("anthropic/claude-sonnet-4-5", "house/m1"))
    judges = resolve_judges(built, environ={})
    claude = judges["anthropic/claude-sonnet-4-5"]
    assert claude.base_url == "http://127.0.0.1:9/v1" and claude.provider.rpm == 50
    assert claude.provider.headers == {"anthropic-beta": "x"}
    assert judges["house/m1"].provider.api_key_env == "HOUSE_KEY"
    with pytest.raises(ConfigError, match=r"NAME\.KEY=VALUE"):
        Config.of(provider=("anthropic",))
    with pytest.raises(ConfigError, match="protocol"):
        Config.of(provider=("anthropic.protocol=carrier-pigeon",))
    with pytest.raises(ConfigError, match="never goes in a file"):
        Config.from_mapping({"providers": {"anthropic": {"api_key": "sk-x"}}})


def test_a_judge_without_its_key_is_one_clear_line(tmp_path: Path) -> None:
    from judge_engine.endpoints import Keys

    config = _config(_source(tmp_path), tmp_path / "o", "anthropic/claude-sonnet-4-5")
    judges = resolve_judges(config, environ={})
    with pytest.raises(ConfigError, match=r"\$ANTHROPIC_API_KEY"):
        Keys.of(judges, None, "OPENAI_API_KEY", environ={})


# --- the request each provider accepts --------------------------------------------------


def _error(code: str | None, param: str | None, message: str) -> GatewayError:
    return GatewayError(
        "client_error", message, status=400, retryable=False, code=code, param=param
    )


def test_profiles_by_family_and_what_a_refusal_teaches() -> None:
    table = PROVIDERS
    o3 = profile_for(resolve("openai/o3", table, environ={}), reasoning_effort="low")
    assert (o3.family, o3.temperature, o3.tokens_field, o3.reasoning_effort) == (
        "reasoning", False, "max_completion_tokens", "low",
    )  # fmt: skip
    chat = profile_for(resolve("openai/gpt-4.1", table, environ={}))
    assert (chat.temperature, chat.tokens_field) == (True, "max_tokens")
    assert profile_for(resolve("anthropic/claude-x", table, environ={})).structured == "tool"
    # OpenAI's words, then other providers' words.
    sent = {"temperature": 0.0, "max_tokens": 500, "response_format": {"type": "json_schema"}}
    profile = profile_for(resolve("house-model", table, base_url="http://x/v1", environ={}))
    change = learn(profile, _error("unsupported_value", "temperature", "Unsupported value"), sent)
    assert change and not profile.temperature
    assert learn(profile, _error("unsupported_value", "temperature", "x"), sent) == ""  # taught
    change = learn(profile, _error(None, None, "Use 'max_completion_tokens' instead of "
                                                "'max_tokens': not supported"), sent)  # fmt: skip
    assert change and profile.tokens_field == "max_completion_tokens"
    # The same parameter refused after its adjustment: an error, never a loop.
    with pytest.raises(ProfileError):
        learn(profile, _error("unsupported_parameter", "max_completion_tokens", "x"),
              {"max_completion_tokens": 500})  # fmt: skip
    # JSON mode where a schema is refused; a refusal of JSON mode too is an error.
    change = learn(
        profile, _error(None, None, "response_format json_schema is not supported"), sent
    )
    assert change and profile.structured == "json_object"
    with pytest.raises(ProfileError):
        learn(profile, _error(None, None, "response_format is not supported"),
              {"response_format": {"type": "json_object"}})  # fmt: skip


def test_the_verdict_schema_meets_openais_strict_rules() -> None:
    from judge_engine.prompt import response_format

    schema = response_format()["json_schema"]["schema"]
    assert strict_schema_problem(schema) is None
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    assert "additionalProperties" in (strict_schema_problem(loose) or "")
    loose["additionalProperties"] = False
    assert "Missing 'a'" in (strict_schema_problem(loose) or "")


# --- the simulator's modes, held to the official SDKs' types ----------------------------


async def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, orjson.loads(await response.read())


def _body(model: str, **extra: Any) -> dict[str, Any]:
    from judge_engine.prompt import render_request
    from judge_engine.rubrics import RubricSet
    from judge_engine.sessions import Session, parse_row
    from judge_engine.sessions.sources import RawRow

    session = parse_row(RawRow("x", 0, synth.otel_row("s", "swebench")))
    assert isinstance(session, Session)
    rubric = RubricSet.load().for_benchmark("swebench")
    body = dict(render_request(session, rubric, model).body)
    body.update(extra)
    return body


@pytest.mark.parametrize("mode", ["openai", "azure", "gemini", "vllm-reasoning", "ollama-thinking"])
async def test_openai_shaped_modes_answer_what_the_sdk_reads_and_refuse_like_the_provider(
    mode: str,
) -> None:
    from openai.types.chat import ChatCompletion

    path = {
        "azure": "/openai/deployments/dep/chat/completions?api-version=2024-10-21",
        "gemini": "/v1beta/openai/chat/completions",
    }.get(mode, "/v1/chat/completions")
    auth = {"api-key": "k"} if mode == "azure" else {"Authorization": "Bearer k"}
    async with Simulator(SimConfig(provider=mode)) as sim:
        root = sim.url.rsplit("/v1", 1)[0]
        status, reply = await _post(root + path, _body("gpt-4.1"), auth)
        assert status == 200, reply
        ChatCompletion.model_validate(reply)
        if mode in ("openai", "azure"):
            status, reply = await _post(
                root + path, _body("o3", temperature=0.0, max_tokens=50), auth
            )
            assert status == 400 and reply["error"]["code"] in ("unsupported_parameter",
                                                                 "unsupported_value")  # fmt: skip
        status, reply = await _post(root + path, _body("gpt-4.1", shoe_size=44), auth)
        assert status == 400
        if mode == "gemini":
            assert isinstance(reply, list) and reply[0]["error"]["status"] == "INVALID_ARGUMENT"
        status, _ = await _post(root + "/v1/messages", _body("gpt-4.1"), auth)
        assert status == 404


async def test_the_anthropic_mode_is_the_messages_api() -> None:
    from anthropic.types import Message

    from judge_engine.gateway.protocols import encode

    async with Simulator(SimConfig(provider="anthropic")) as sim:
        url = sim.url.rsplit("/v1", 1)[0] + "/v1/messages"
        judge = resolve("anthropic/claude-sonnet-4-5", PROVIDERS, environ={})
        body = orjson.loads(encode(_body("x"), judge, profile_for(judge), None))
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        status, reply = await _post(url, body, headers)
        assert status == 200, reply
        message = Message.model_validate(reply)
        assert message.stop_reason == "tool_use" and message.content[0].type == "tool_use"
        # What the API refuses, in its error shape.
        for broken, words in (
            ({**body, "response_format": {"type": "json_object"}}, "Extra inputs"),
            ({k: v for k, v in body.items() if k != "max_tokens"}, "max_tokens"),
            ({**body, "temperature": 1.5}, "temperature"),
            ({**body, "messages": [{"role": "assistant", "content": "x"}]}, "alternate"),
            ({**body, "output_format": {"type": "json_schema", "schema": {}}}, "Extra inputs"),
        ):
            status, reply = await _post(url, broken, headers)
            assert status == 400 and reply["type"] == "error", broken.keys()
            assert words in reply["error"]["message"]
        # Structured outputs under their beta header: the verdict as the reply's text.
        beta = {**headers, "anthropic-beta": "structured-outputs-2025-11-13"}
        shaped = {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}
        shaped["output_format"] = {
            "type": "json_schema",
            "schema": body["tools"][0]["input_schema"],
        }
        status, reply = await _post(url, shaped, beta)
        assert status == 200 and Message.model_validate(reply).content[0].type == "text"
        status, reply = await _post(url, body, {"anthropic-version": "2023-06-01"})
        assert status == 401 and reply["error"]["type"] == "authentication_error"
        status, reply = await _post(url, body, {"x-api-key": "k"})
        assert status == 400 and "anthropic-version" in reply["error"]["message"]


def test_the_sim_command_offers_every_mode() -> None:
    from judge_engine.cli.sim import PROVIDER_MODES

    assert PROVIDER_MODES == MODES


# --- grading through each provider ------------------------------------------------------


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


async def test_a_reasoning_judge_of_the_readme_grades_against_openais_rules(tmp_path: Path) -> None:
    """`--judge o3` with `--max-output-tokens`: the old request (temperature 0,
    max_tokens) is refused by every reasoning model; the profile sends neither."""
    source = _source(tmp_path)
    async with Simulator(SimConfig(provider="openai")) as sim:
        config = _config(
            source, tmp_path / "out", "openai/o3", "openai/gpt-4.1",
            provider=(f"openai.base_url={sim.url}",), max_output_tokens=600,
            reasoning_effort="low",
        )  # fmt: skip
        result, _ = await grade(config, None, environ=KEYS)
        refused = sum(v for k, v in sim.status.items() if k >= 400)
    assert result.status == "done", result.message
    assert result.verdicts == 6 and refused == 0
    records = read_jsonl(tmp_path / "out" / "journal.jsonl")
    assert {r["judge"] for r in records} == {"openai/o3", "openai/gpt-4.1"}
    assert all(r["usage"].get("reasoning_tokens") for r in records if r["judge"] == "openai/o3")
    run = orjson.loads((tmp_path / "out" / "run.json").read_bytes())
    profile = run["judges"]["openai/o3"]["profile"]
    assert profile["family"] == "reasoning" and profile["tokens_field"] == "max_completion_tokens"
    assert KEYS["OPENAI_API_KEY"] not in (tmp_path / "out" / "run.json").read_text()


async def test_a_refused_parameter_is_learned_once_and_remembered(tmp_path: Path) -> None:
    """A judge whose name does not say it is a reasoning model, served by one through a
    gateway: the first 400 teaches its profile (not a retry), run.json keeps it, and the
    next run starts right."""
    source = _source(tmp_path, 4)
    key = "sk-gateway-" + "x" * 20
    async with Simulator(SimConfig(provider="openai", reasoning_models=("house-judge",))) as sim:
        config = _config(source, tmp_path / "learn", "house-judge", base_url=sim.url, concurrency=1)
        first, summary = await grade(config, key)
        refusals = sim.status[400]
        second, _ = await grade(config.replace(fresh=True), key)
        again = sim.status[400]
    assert first.status == "done" and first.retries == 0, first.message
    assert refusals == 1  # one refusal taught the profile; nothing refused after
    assert first.adjustments == {
        "house-judge": ["temperature: not sent (only the default value is supported)"]
    }
    assert "house-judge: temperature: not sent" in summary
    assert again == refusals and second.status == "done"  # the next run started right


async def test_an_anthropic_judge_grades_through_the_native_messages_api(tmp_path: Path) -> None:
    source = _source(tmp_path, 4)
    out = tmp_path / "out"
    async with Simulator(SimConfig(provider="anthropic", api_key=KEYS["ANTHROPIC_API_KEY"])) as sim:
        config = _config(
            source, out, "anthropic/claude-sonnet-4-5",
            provider=(f"anthropic.base_url={sim.url}",), temperature=1.5,
        )  # fmt: skip
        result, _ = await grade(config, None, environ=KEYS)
        refused = sum(v for k, v in sim.status.items() if k >= 400)
    assert result.status == "done", result.message
    assert result.verdicts == 4 and refused == 0  # temperature clipped to Anthropic's 1
    records = read_jsonl(out / "journal.jsonl")
    assert all(r["request_id"].startswith("msg_") for r in records)
    assert all(r["usage"]["prompt_tokens"] > 0 for r in records)
    assert all(r["served_model"] == "claude-sonnet-4-5" for r in records)


@pytest.mark.parametrize("style", ["deployments", "v1"])
async def test_azure_in_both_url_styles_with_its_key_and_deployment_names(
    tmp_path: Path, style: str
) -> None:
    source = _source(tmp_path, 2)
    async with Simulator(SimConfig(provider="azure", api_key=KEYS["AZURE_OPENAI_API_KEY"])) as sim:
        endpoint = sim.url.rsplit("/v1", 1)[0]
        env = {**KEYS, "AZURE_OPENAI_ENDPOINT": endpoint}
        extra = ("azure.api_version=2024-10-21",) if style == "deployments" else ()
        config = _config(source, tmp_path / style, "azure/my-judge", provider=extra)
        mismatch, _ = await grade(config, None, environ=env)
        allowed, _ = await grade(
            config.replace(allow_model_mismatch=True, out=tmp_path / f"{style}-ok"),
            None,
            environ=env,
        )
    # The deployment serves another model than its name: refused unless allowed.
    assert mismatch.status == "error" or mismatch.failed == 2
    assert allowed.status == "done", allowed.message
    records = read_jsonl(tmp_path / f"{style}-ok" / "journal.jsonl")
    assert {r["served_model"] for r in records} == {"gpt-4.1-2025-04-14"}


async def test_a_content_filter_fails_its_request_and_a_fallback_may_take_it(
    tmp_path: Path,
) -> None:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(3)]
    for span in rows[1]["spans"]:
        attributes = span["attributes"]
        attributes["gen_ai.input.messages"] = attributes["gen_ai.input.messages"].replace(
            "Fix the issue", "FILTER-ME Fix the issue"
        )
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    async with (
        Simulator(SimConfig(provider="azure")) as azure,
        Simulator(SimConfig(provider="anthropic")) as anthropic,
    ):
        env = {**KEYS, "AZURE_OPENAI_ENDPOINT": azure.url.rsplit("/v1", 1)[0]}
        base = _config(
            source, tmp_path / "filtered", "azure/gpt-4.1",
            provider=(f"anthropic.base_url={anthropic.url}",),
        )  # fmt: skip
        filtered, _ = await grade(base, None, environ=env)
        taken, _ = await grade(
            base.replace(
                out=tmp_path / "taken", fallback_judge=("anthropic/claude-haiku-4-5",),
                fallback_on=("content_filter",),
            ),
            None,
            environ=env,
        )  # fmt: skip
    assert filtered.status == "incomplete" and filtered.failed == 1
    failure = next(r for r in read_jsonl(tmp_path / "filtered" / "journal.jsonl") if r["error"])
    assert failure["error"].startswith("content_filter") and failure["transient"] is False
    assert taken.status == "done", taken.message
    scores = {r["session_id"]: r for r in read_jsonl(tmp_path / "taken" / "scores.jsonl")}
    assert scores["s1"]["judge_model"] == "anthropic/claude-haiku-4-5"
    assert scores["s1"]["scores"]["task_success"] in (0, 1)


@pytest.mark.parametrize("mode", ["vllm-reasoning", "ollama-thinking"])
async def test_a_reasoning_servers_thinking_is_kept_apart_and_never_read_as_the_verdict(
    tmp_path: Path, mode: str
) -> None:
    source = _source(tmp_path, 3)
    async with Simulator(SimConfig(provider=mode)) as sim:
        provider = "vllm" if mode == "vllm-reasoning" else "ollama"
        config = _config(
            source, tmp_path / "out", f"{provider}/qwen3-32b",
            provider=(f"{provider}.base_url={sim.url}",),
        )  # fmt: skip
        result, _ = await grade(config, None, environ={})  # a local server: no key
    async with Simulator(SimConfig()) as plain:  # the same verdict rule, no thinking
        await grade(
            _config(source, tmp_path / "plain", "qwen3-32b", base_url=plain.url), "sk-" + "p" * 20
        )
    assert result.status == "done" and result.retries == 0, result.message
    records = read_jsonl(tmp_path / "out" / "journal.jsonl")
    assert all(r["thinking"] and "Let me look" in r["thinking"] for r in records)
    # The forged {"success": 0} inside the <think> block is not the verdict.
    assert [r["success"] for r in records] == [
        r["success"] for r in read_jsonl(tmp_path / "plain" / "journal.jsonl")
    ]


async def test_refusals_and_cut_replies(tmp_path: Path) -> None:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(2)]
    for span in rows[0]["spans"]:
        attributes = span["attributes"]
        attributes["gen_ai.input.messages"] = attributes["gen_ai.input.messages"].replace(
            "Fix the issue", "REFUSE-ME Fix the issue"
        )
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    async with Simulator(SimConfig(provider="openai")) as sim:
        config = _config(
            source, tmp_path / "out", "openai/gpt-4.1", provider=(f"openai.base_url={sim.url}",),
            max_output_tokens=20,
        )  # fmt: skip
        result, _ = await grade(config, None, environ=KEYS)
        bodies = sim.models
    del bodies
    records = {r["session_id"]: r for r in read_jsonl(tmp_path / "out" / "journal.jsonl")}
    assert records["s0"]["error"].startswith("refused: I can't help")
    # Cut at 20 tokens: asked once more with a larger budget, which the verdict fits.
    assert records["s1"]["status"] == "ok" and records["s1"]["attempts"] == 1
    assert result.retries == 0


async def test_a_three_vendor_panel_with_the_guard_a_throttled_vendor_and_a_kill(
    tmp_path: Path,
) -> None:
    """openai/gpt-4.1, anthropic/claude-sonnet-4-5 and google/gemini-2.5-pro, each on its
    own endpoint and key, Anthropic's throttled; sessions Claude made go to the fallback;
    killed with SIGKILL mid-run and resumed by the same command."""
    import os
    import sys

    import anyio

    rows = [
        synth.otel_row(f"s{i:02d}", "swebench", seed=i,
                       models=("claude-sonnet-4-5",) if i % 4 == 0 else ("qwen3-32b",))
        for i in range(12)
    ]  # fmt: skip
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "out"
    throttled = SimConfig(provider="anthropic", api_key=KEYS["ANTHROPIC_API_KEY"],
                          throttle_rate=0.3, latency_ms=150, seed=3)  # fmt: skip
    async with (
        Simulator(
            SimConfig(provider="openai", api_key=KEYS["OPENAI_API_KEY"], latency_ms=150)
        ) as openai,
        Simulator(throttled) as anthropic,
        Simulator(
            SimConfig(provider="gemini", api_key=KEYS["GEMINI_API_KEY"], latency_ms=150)
        ) as gemini,
    ):
        command = [
            sys.executable, "-m", "judge_engine", "grade", source,
            "--judge", "openai/gpt-4.1", "--judge", "anthropic/claude-sonnet-4-5",
            "--judge", "google/gemini-2.5-pro", "--fallback-judge", "openai/gpt-4.1-mini",
            "--provider", f"openai.base_url={openai.url}",
            "--provider", f"anthropic.base_url={anthropic.url}",
            "--provider", f"google.base_url={gemini.url.rsplit('/v1', 1)[0]}/v1beta/openai",
            "--out", str(out), "--quiet", "--concurrency", "2", "--backoff-base", "0.05",
        ]  # fmt: skip
        env = {**os.environ, **KEYS}
        process = await anyio.open_process(command, env=env)
        with anyio.fail_after(60):
            while _lines(out / "journal.jsonl") < 8:  # noqa: ASYNC110 - another process's file
                await anyio.sleep(0.05)
        process.kill()
        await process.wait()
        resumed = await anyio.run_process(command, env=env, check=False)
        verified = await anyio.run_process(
            [sys.executable, "-m", "judge_engine", "journal", "verify", str(out)], check=False
        )
        served = {name: sim.stats() for name, sim in
                  (("openai", openai), ("anthropic", anthropic), ("gemini", gemini))}  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout.decode() + resumed.stderr.decode()
    assert verified.returncode == 0, verified.stdout.decode()
    scores = read_jsonl(out / "scores.jsonl")
    assert len(scores) == 36 and all(r["scores"]["task_success"] in (0, 1) for r in scores)
    by_slot = {(r["session_id"], r["judge_slot"]): r["judge_model"] for r in scores}
    for i in range(12):
        expected = "openai/gpt-4.1-mini" if i % 4 == 0 else "anthropic/claude-sonnet-4-5"
        assert by_slot[(f"s{i:02d}", "anthropic/claude-sonnet-4-5")] == expected
    # Only Anthropic throttled; the other vendors' requests never waited for it.
    assert served["anthropic"]["status"].get("429", 0) > 0
    records = read_jsonl(out / "journal.jsonl")
    assert all(r["attempts"] == 1 for r in records if not r["judge"].startswith("anthropic/"))
    # At most the requests in flight at the kill were asked twice, per vendor.
    for stats in served.values():
        assert stats["verdicts_served"] - stats["verdicts_distinct"] <= 2 * 4


async def test_batch_mode_for_an_openai_and_an_anthropic_judge(tmp_path: Path) -> None:
    """OpenAI's Batch API and Anthropic's Message Batches in one run, each with its own
    log; then a kill -9 while Anthropic's batch runs, and the same command collects
    it without submitting anything twice."""
    import os
    import sys

    import anyio
    from anthropic.types.messages import MessageBatch

    source = _source(tmp_path, 6)
    out = tmp_path / "out"
    async with (
        Simulator(SimConfig(provider="openai", batch_delay_s=0.3)) as openai,
        Simulator(
            SimConfig(provider="anthropic", batch_delay_s=3.0, api_key=KEYS["ANTHROPIC_API_KEY"])
        ) as anthropic,  # fmt: skip
    ):
        command = [
            sys.executable, "-m", "judge_engine", "grade", source,
            "--judge", "openai/gpt-4.1", "--judge", "anthropic/claude-sonnet-4-5",
            "--provider", f"openai.base_url={openai.url}",
            "--provider", f"anthropic.base_url={anthropic.url}",
            "--out", str(out), "--quiet", "--batch",
        ]  # fmt: skip
        env = {**os.environ, **KEYS}
        process = await anyio.open_process(command, env=env)
        with anyio.fail_after(60):
            while not anthropic.message_batches.batches:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        process.kill()  # SIGKILL while the message batch runs
        await process.wait()
        resumed = await anyio.run_process(command, env=env, check=False)
        stats = anthropic.stats()
        batch = next(iter(anthropic.message_batches.batches.values()))
        shown = batch.to_dict("http://127.0.0.1")
    assert resumed.returncode == 0, resumed.stdout.decode() + resumed.stderr.decode()
    MessageBatch.model_validate(shown)
    assert stats["message_batch_requests"] == 6 and stats["message_batch_requests_twice"] == 0
    records = read_jsonl(out / "journal.jsonl")
    assert len(records) == 12 and all(r["status"] == "ok" for r in records)
    assert (out / "anthropic-batches.jsonl").exists() and (out / "batches.jsonl").exists()


async def test_the_readmes_multi_vendor_command_grades_against_each_vendors_mode(
    tmp_path: Path,
) -> None:
    """The quick start of "Judges from any provider", word for word but for its source,
    its results folder and the simulators' addresses."""
    import os
    import re
    import shlex
    import sys

    import anyio

    readme = README.read_text()
    section = readme.split("## Judges from any provider", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    command = next(c for c in block.replace("\\\n", " ").splitlines() if "grade" in c)
    argv = shlex.split(command)[1:]  # without "judge-engine"
    argv = [str(SAMPLES / "openai-chat.jsonl") if a == "traces/" else a for a in argv]
    argv = [str(tmp_path / "out") if a == "out/run1" else a for a in argv]
    assert re.search(r"--judge anthropic/\S+", command) and "--reasoning-effort" in argv
    async with (
        Simulator(SimConfig(provider="openai", api_key=KEYS["OPENAI_API_KEY"])) as openai,
        Simulator(SimConfig(provider="anthropic", api_key=KEYS["ANTHROPIC_API_KEY"])) as claude,
        Simulator(SimConfig(provider="gemini", api_key=KEYS["GEMINI_API_KEY"])) as gemini,
    ):
        gemini_base = gemini.url.rsplit("/v1", 1)[0] + "/v1beta/openai"
        argv += [
            "--provider", f"openai.base_url={openai.url}",
            "--provider", f"anthropic.base_url={claude.url}",
            "--provider", f"google.base_url={gemini_base}", "--quiet",
        ]  # fmt: skip
        done = await anyio.run_process(
            [sys.executable, "-m", "judge_engine", *argv], env={**os.environ, **KEYS}, check=False
        )
        refused = [sim.status for sim in (openai, claude, gemini)]
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert all(not any(code >= 400 for code in status) for status in refused), refused
