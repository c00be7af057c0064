"""The HTML report at scale: its size, the time to write it, and the time a browser
takes to make it usable, for runs of 1,000, 5,000 and 10,000 sessions.

Generated small OTel sessions (about 8 KB each) graded by a two-judge panel against a
zero-latency simulator; then `judge-engine report OUT --html FILE`; then headless
Chromium (Debian's `chromium`, driven by Playwright) opens the file from disk:
"usable" is the page's own clock (performance.now()) when the session table is
filled and its controls work; "open a session" is the wall time from a click on a row
to its transcript expanded and shown.

    python bench/html_report.py [--sizes 1000,5000,10000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, write_sessions

ENV = {"OPENAI_API_KEY": KEY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")
    print(f"machine: {machine()}")
    print(f"{'sessions':>9} {'file':>9} {'write':>8} {'usable':>8} {'open a session':>15}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sim("--latency-ms", "0") as sim,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for size in (int(n) for n in args.sizes.split(",")):
            folder = Path(tmp) / str(size)
            folder.mkdir()
            source = write_sessions(folder / "sessions.jsonl", size)
            out = folder / "out"
            command = grade_command([str(source)], sim.url, out, "--judge", "o3")
            run([*command, "--concurrency", "64"], env=ENV)
            report = folder / "report.html"
            started = time.perf_counter()
            run([sys.executable, "-m", "judge_engine", "report", str(out), "--html", str(report)])
            written = time.perf_counter() - started
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(report.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            usable_ms = float(page.locator("body").get_attribute("data-ready-ms") or "nan")
            started = time.perf_counter()
            page.locator("#browser tbody tr").first.click()
            page.locator("#transcript", has_text="## Transcript").wait_for()
            opened = time.perf_counter() - started
            page.close()
            print(
                f"{size:>9,} {report.stat().st_size / 1e6:>7.1f}MB {written:>7.1f}s "
                f"{usable_ms / 1000:>7.2f}s {opened * 1000:>13.0f}ms"
            )
        browser.close()


if __name__ == "__main__":
    main()
