"""`wlf play` driven by piped input."""

from __future__ import annotations

import io
import subprocess
import sys

from experiments.play import play


def _reader(lines):
    it = iter(lines)

    def read(prompt):
        try:
            return next(it)
        except StopIteration:
            raise EOFError
    return read


def test_a_scripted_week_reaches_the_rubric_and_bad_input_is_reasked():
    out = io.StringIO()
    answers = ["7", "", "1"] + ["1"] * 20
    final = play("seed_v1", seed=1, read=_reader(answers), out=out, color=False)
    text = out.getvalue()
    assert final is not None and final["done"]
    assert "Type 1, 2 or 3" in text  # "7" and "" were re-asked
    assert "week score" in text
    assert final["decisions"] == 7
    # strategic-looking week (always the first action) on seed_v1: staging fixed, no early end
    assert final["status"]["staging"] == "fixed" and not final["early_end"]


def test_end_of_input_leaves_cleanly():
    out = io.StringIO()
    assert play("week_v2", seed=0, read=_reader(["1", "2"]), out=out, color=False) is None
    assert "You left the week" in out.getvalue()


def test_cli_with_piped_stdin():
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "play", "--preset", "seed_v1",
                           "--seed", "2", "--no-color"], input="1\n" * 7, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "week score" in proc.stdout
    assert "Traceback" not in proc.stderr
