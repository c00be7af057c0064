"""The torture run, CI-sized: a fault storm, SIGKILLs at random moments, an exact audit.

The full run (10,000 sessions, five kills) is `python bench/torture.py`; its figures are
in the README. This one runs the same harness on fewer sessions so that every change
is checked against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from torture import report, torture


def test_a_small_torture_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    outcome = torture(sessions=300, kills=3, seed=5, folder=tmp_path)
    text = report(outcome)
    assert outcome.kills >= 2, text
    assert sum(outcome.faults.values()) > 50, text
    assert outcome.verdicts_lost == 0, text
    assert outcome.verdicts_duplicated == 0, text
    assert outcome.verdicts_differing == 0, text
    assert outcome.score_rows == 600, text
    assert outcome.verify_ok, outcome.verify_output
    # Nothing asked again but what the kills left answered and not yet durable. The
    # audit counts both sides from outside the processes (the simulator's serves, the
    # journal's lines) around a SIGKILL; on a loaded machine it is off by one about one
    # run in six (seen before this was written too), so it may differ by one per kill.
    lost = sum(outcome.lost_in_flight)
    assert lost <= outcome.asked_again <= lost + outcome.kills, text
    # ... and at most what was in flight at each kill; the key echoed back is nowhere.
    assert all(n <= 64 for n in outcome.lost_in_flight), text
    assert outcome.key_leaks == 0, text
    assert any(kind in outcome.faults for kind in ("forged", "quoted", "echo_key")), text
    assert outcome.passed
