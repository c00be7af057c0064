"""The HTML report in a real browser (headless Chromium, driven by Playwright): it
loads from disk with no console error and no network request, filters and search
narrow the session table to the right sessions, a session view shows the transcript
exactly as kept and every judge's reasoning; screenshots at desktop and laptop widths.
Also: what the judges read is kept once per session and `show OUT --session` prints it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from judge_engine import transcripts
from judge_engine.cli import main
from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

KEY = "sk-html-" + "h" * 24
#: The screenshots the README shows, made by the browser test below (and looked at).
DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM = os.environ.get("JUDGE_ENGINE_CHROMIUM") or shutil.which("chromium")
SHOTS = (
    Path(os.environ.get("JUDGE_ENGINE_SHOTS", "")) if os.environ.get("JUDGE_ENGINE_SHOTS") else None
)
HOSTILE = (
    '<img src="https://attacker.invalid/x.png" onerror="alert(1)"></pre><script>alert(2)</script>'
)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A graded run: 40 sessions over two benchmarks, a panel of three (one fallback),
    a hostile task, disagreements, failures, labels."""
    import anyio

    folder = tmp_path_factory.mktemp("html")
    rows = [
        synth.otel_row(f"s{i:03d}", "swebench" if i % 2 else "tau2_airline", seed=i,
                       success=i % 3 > 0)
        for i in range(40)
    ]  # fmt: skip
    for span in rows[7]["spans"]:  # a hostile task: markup and script in the trace
        attributes = span["attributes"]
        attributes["gen_ai.input.messages"] = attributes["gen_ai.input.messages"].replace(
            "Fix the issue:", orjson.dumps(HOSTILE).decode()[1:-1] + " Fix the issue:"
        )
    source = write_jsonl(folder / "sessions.jsonl", rows)
    out = folder / "out"

    async def run() -> None:
        async with Simulator(SimConfig(disagreement=0.3, fail_rate=0.0)) as sim:
            config = Config.of(
                sources=(str(source),), judge=("gpt-4.1", "o3"), base_url=sim.url, out=out,
                quiet=True, backoff_base=0.01,
            )  # fmt: skip
            await grade(config, KEY)

    anyio.run(run)
    return out


def test_each_session_keeps_what_its_judges_read_once(graded: Path) -> None:
    kept = list(transcripts.read(graded))
    assert len(kept) == 40 == len({k.session_id for k in kept})
    requests = {r["session_id"] for r in read_jsonl(graded / "journal.jsonl")}
    assert requests == {k.session_id for k in kept}
    text = kept[0].text()
    assert "## Task" in text and "## Transcript" in text
    for path in graded.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


def test_show_prints_the_kept_transcript_and_every_verdict(
    graded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item = transcripts.find(graded, "s003")
    assert item is not None
    assert main(["show", str(graded), "--session", "s003"]) == 0
    said = capsys.readouterr().out
    assert item.text() in said
    assert "gpt-4.1 (gpt-4.1):" in said and "o3 (o3):" in said


def test_journal_verify_catches_an_edited_transcript(graded: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(graded, copy)
    lines = (copy / transcripts.FILE).read_bytes().splitlines(keepends=True)
    import base64
    import zlib

    first = orjson.loads(lines[0])
    forged = zlib.compress(b"a different transcript")
    first["zlib"] = base64.b64encode(forged).decode()
    lines[0] = orjson.dumps(first) + b"\n"
    (copy / transcripts.FILE).write_bytes(b"".join(lines))
    assert main(["journal", "verify", str(graded)]) == 0
    assert main(["journal", "verify", str(copy)]) == 1


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip("no chromium (tests/run.sh installs Debian's package)")
    if os.environ.get("JUDGE_ENGINE_CHROMIUM") and not Path(CHROMIUM).exists():
        pytest.fail(f"JUDGE_ENGINE_CHROMIUM={CHROMIUM} does not exist")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


def _open(browser: Any, path: Path, width: int = 1440) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return page, errors, requests


def _tab(page: Any, name: str) -> None:
    page.click(f"nav.tabs a[data-tab={name}]")
    page.locator(f"section#{name}").wait_for(state="visible")


def _rows(page: Any) -> list[str]:
    return [
        str(x)
        for x in page.locator("#browser tbody tr").evaluate_all("r => r.map(x => x.dataset.id)")
    ]


def test_the_report_loads_offline_and_its_filters_and_search_work(
    graded: Path, browser: Any, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    assert main(["report", str(graded), "--html", str(report)]) == 0
    page, errors, requests = _open(browser, report)
    assert page.locator("h2", has_text="Agreement").count() == 1
    _tab(page, "success")
    assert page.locator("svg.chart").count() >= 1
    _tab(page, "sessions")
    records = [r for r in read_jsonl(graded / "journal.jsonl")]
    assert sorted(_rows(page)) == sorted({r["session_id"] for r in records})
    # a column filter: one benchmark
    page.select_option("select[data-key=benchmark]", "swebench")
    shown = set(_rows(page))
    assert shown == {r["session_id"] for r in records if r["benchmark"] == "swebench"}
    page.select_option("select[data-key=benchmark]", "")
    # judges disagree
    verdicts: dict[str, set[int]] = {}
    for r in records:
        if r["status"] == "ok":
            verdicts.setdefault(r["session_id"], set()).add(r["success"])
    disagree = {s for s, v in verdicts.items() if len(v) > 1}
    assert disagree, "the simulator's disagreement gives some"
    page.check("#f-disagree")
    assert set(_rows(page)) == disagree
    page.uncheck("#f-disagree")
    # search over reasoning and task
    target = next(r for r in records if r["session_id"] == "s011")
    task_words = transcripts.find(graded, "s011")
    assert task_words is not None
    page.fill("#search", "s011")
    assert _rows(page) == ["s011"]
    page.fill("#search", "")
    # sorting by a column, twice reverses
    page.click("#browser th[data-key=id]")
    first = _rows(page)
    page.click("#browser th[data-key=id]")
    assert _rows(page) == first[::-1] and first in (sorted(first), sorted(first, reverse=True))
    # the session view: every judge's reasoning and the transcript as kept
    page.locator("#browser tbody tr[data-id=s011]").click()
    page.locator("#transcript", has_text="## Transcript").wait_for()
    assert page.locator("#transcript").text_content() == task_words.text()
    cards = page.locator(".verdict")
    assert cards.count() == 2
    for r in records:
        if r["session_id"] == "s011" and r.get("reasoning"):
            assert r["reasoning"] in page.locator("#verdicts").text_content()
    assert target["session_id"] == "s011"
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "view-1440.png"))
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    page.close()


def test_hostile_text_stays_text(graded: Path, browser: Any, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main(["report", str(graded), "--html", str(report)]) == 0
    page, errors, requests = _open(browser, report, width=1024)
    _tab(page, "sessions")
    page.fill("#search", "attacker.invalid")
    assert _rows(page) == ["s007"]
    for session in _rows(page):
        page.locator(f"#browser tbody tr[data-id={session}]").click()
        page.locator("#transcript", has_text="## Transcript").wait_for()
    assert page.locator("img").count() == 0 and page.locator("script").count() == 2
    if SHOTS:
        page.fill("#search", "")
        page.screenshot(path=str(SHOTS / "sessions-1024.png"), full_page=False)
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    page.close()


def test_a_session_graded_before_transcripts_were_kept_says_so(
    graded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "old"
    shutil.copytree(graded, copy)
    (copy / transcripts.FILE).unlink()
    assert main(["show", str(copy), "--session", "s003"]) == 0
    assert "kept no transcript" in capsys.readouterr().out


def test_fresh_sets_the_kept_transcripts_aside_with_the_journal(
    graded: Path, tmp_path: Path
) -> None:
    from judge_engine.journal import Journal

    copy = tmp_path / "again"
    shutil.copytree(graded, copy)
    Journal(copy, fresh=True).close()
    assert not (copy / transcripts.FILE).exists()
    assert len(list(copy.glob("transcripts-*.jsonl"))) == 1
    assert len(list(copy.glob("journal-*.jsonl"))) == 1


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose report has many cells, some of n = 1, long names, and a fallback
    judge answering part of a slot."""
    import anyio

    folder = tmp_path_factory.mktemp("varied")
    rows = []
    for i in range(36):
        benchmark = ["swebench", "appworld", "tau2_airline"][i % 3]
        harness = f"harness-{i % 4}" if i < 24 else f"a-harness-with-a-very-long-name-{i}"
        model = "gpt-4.1" if i % 5 == 0 else "claude-opus-4-5"
        rows.append(synth.otel_row(f"v{i:03d}", benchmark, harness=harness, models=(model,),
                                   seed=i, success=i % 2 == 0))  # fmt: skip
    source = write_jsonl(folder / "sessions.jsonl", rows)
    out = folder / "out"

    async def run() -> None:
        async with Simulator(SimConfig()) as sim:
            config = Config.of(
                sources=(str(source),), judge=("gpt-4.1", "o3"), fallback_judge=("gemini-2.5-pro",),
                base_url=sim.url, out=out, quiet=True, backoff_base=0.01,
            )  # fmt: skip
            await grade(config, KEY)

    # In a thread of its own: the browser's event loop may already run in this one.
    import threading

    worker = threading.Thread(target=anyio.run, args=(run,))
    worker.start()
    worker.join()
    return out


@pytest.mark.parametrize("width", [1440, 1024])
def test_the_layout_a_person_reads(varied: Path, browser: Any, tmp_path: Path, width: int) -> None:
    """Tabs keep every part one click away; a session opens beside the table, not below
    it; chart labels fit their column; cells of n = 1 are folded away until asked for;
    a slot's verdict from a fallback judge is marked in its cell."""
    report = tmp_path / "report.html"
    assert main(["report", str(varied), "--html", str(report)]) == 0
    page, errors, _ = _open(browser, report, width=width)
    # One tab at a time, the sessions one click away and at the top of the page.
    assert page.locator("section#run").is_visible()
    assert not page.locator("section#sessions").is_visible()
    _tab(page, "sessions")
    assert page.locator("#browser").bounding_box()["y"] < 300
    assert not page.locator("section#success").is_visible()
    # A fallback's verdicts are marked, with the model's name.
    marked = page.locator("#browser td.fallback")
    assert marked.count() > 0 and "gemini-2.5-pro" in marked.first.text_content()
    # The session view opens over the right of the table: the row stays in view.
    row = page.locator("#browser tbody tr").nth(2)
    row.click()
    page.locator("#transcript", has_text="## Transcript").wait_for()
    view = page.locator("#view").bounding_box()
    assert view["y"] == 0 and view["height"] >= 850 and view["x"] > width * 0.3
    box = row.bounding_box()
    assert box["y"] >= 0 and box["y"] < 900 and box["x"] < view["x"]
    assert page.locator("#browser tbody tr.open").count() == 1
    if width == 1440:
        page.screenshot(path=str(DOCS / "report-session.png"))
    page.keyboard.press("Escape")
    page.locator("#view").wait_for(state="hidden")  # the hash changes, then the panel goes
    if width == 1024:
        page.screenshot(path=str(DOCS / "report-sessions-1024.png"))
    # Charts: labels within their column, axes at the top and bottom of a long one.
    _tab(page, "success")
    assert not page.locator(".chart-n1").is_visible()
    shown = page.locator(".chart-many svg.chart").get_attribute("data-rows")
    page.check("#show-n1")
    every = page.locator(".chart-n1 svg.chart").get_attribute("data-rows")
    assert int(every) > int(shown) > 0
    widths = page.locator(".chart-n1 svg.chart text.label").evaluate_all(
        "ts => ts.map(t => t.getComputedTextLength())"
    )
    assert widths and max(widths) <= 372, max(widths)
    titles = page.locator(".chart-n1 svg.chart text.label title").all_text_contents()
    assert any("a-harness-with-a-very-long-name" in t for t in titles)
    assert page.locator(".chart-n1 svg.chart text.axis").count() == 10  # top and bottom
    if width == 1440:
        page.screenshot(path=str(DOCS / "report-success.png"))
    assert errors == []
    page.close()


def test_the_measured_tab_and_the_judge_vs_label_filter(
    graded: Path, browser: Any, tmp_path: Path
) -> None:
    """With labels, the Measured tab shows the judges against them, corrected success,
    the regression, dependability, cost, spending and best per benchmark, each chart
    drawn with its labels inside it; the session browser's filter "judge vs label
    disagree" lists exactly the labelled sessions some judge got wrong."""
    truth = {f"s{i:03d}": int(i % 3 > 0) for i in range(40)}
    truth["s000"] = 1  # the file says otherwise than the row: the file wins
    labels = tmp_path / "labels.csv"
    chosen = sorted(truth)[::2]
    labels.write_text("session_id,label\n" + "".join(f"{s},{truth[s]}\n" for s in chosen))
    report = tmp_path / "report.html"
    assert main(["report", str(graded), "--labels", str(labels), "--html", str(report)]) == 0
    page, errors, requests = _open(browser, report)
    _tab(page, "measured")
    section = page.locator("section#measured")
    for heading in ("The judges against the labels", "Corrected success (rogan-gladen)",
                    "Which factor explains success", "Dependability", "Cost against quality",
                    "How failed runs spend", "Best per benchmark"):  # fmt: skip
        assert section.locator("h3", has_text=heading).count() == 1, heading
    charts = section.locator("svg.chart")
    assert charts.count() >= 5
    for index in range(charts.count()):
        chart = charts.nth(index).bounding_box()
        assert chart is not None and chart["width"] > 100 and chart["height"] > 30
        # every text, as drawn (rotations included), inside its chart
        outside = charts.nth(index).evaluate(
            """svg => { const box = svg.getBoundingClientRect();
                return [...svg.querySelectorAll("text")].map(t => t.getBoundingClientRect())
                  .filter(r => r.left < box.left - 1 || r.right > box.right + 1
                               || r.top < box.top - 1 || r.bottom > box.bottom + 1).length; }"""
        )
        assert outside == 0, index
    page.screenshot(path=str(DOCS / "report-measured.png"), full_page=False)
    _tab(page, "sessions")
    page.check("#f-label")
    records = [r for r in read_jsonl(graded / "journal.jsonl") if r["status"] == "ok"]
    # the rows carry their own success too: every session is labelled, half by the file
    wrong = {r["session_id"] for r in records if r["success"] != truth[r["session_id"]]}
    assert wrong and set(_rows(page)) == wrong
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    page.close()


def test_failure_modes_on_cards_and_in_the_filters(
    graded: Path, browser: Any, tmp_path: Path
) -> None:
    """Each failed verdict's card shows its mode, step and note; the table's failure-mode
    column filters by mode (the first slot that named one); "judges disagree on the
    mode" lists exactly the sessions two judges failed with different modes."""
    report = tmp_path / "report.html"
    assert main(["report", str(graded), "--html", str(report)]) == 0
    page, errors, _ = _open(browser, report)
    _tab(page, "measured")
    assert page.locator("section#measured h3", has_text="Why sessions failed").count() == 1
    _tab(page, "sessions")
    records = [r for r in read_jsonl(graded / "journal.jsonl") if r["status"] == "ok"]
    slots = ["gpt-4.1", "o3"]
    named: dict[str, list[str]] = {}
    for slot in slots:
        for r in records:
            if r["slot"] == slot and r["success"] == 0 and r.get("failure_mode"):
                named.setdefault(r["session_id"], []).append(r["failure_mode"])
    first = {s: modes[0] for s, modes in named.items()}
    mode = max(set(first.values()), key=list(first.values()).count)
    page.select_option("select[data-key=mode]", mode)
    assert set(_rows(page)) == {s for s, m in first.items() if m == mode}
    page.select_option("select[data-key=mode]", "")
    page.check("#f-modes")
    assert set(_rows(page)) == {s for s, modes in named.items() if len(set(modes)) > 1}
    page.uncheck("#f-modes")
    session = next(iter(sorted(first)))
    page.locator(f"#browser tbody tr[data-id={session}]").click()
    page.locator("#transcript", has_text="## Transcript").wait_for()
    card = page.locator("#verdicts").text_content() or ""
    failing = next(r for r in records if r["session_id"] == session and r["success"] == 0)
    assert f"failure mode: {failing['failure_mode']}" in card
    assert failing["failure_note"] in card
    assert errors == []
    page.close()
