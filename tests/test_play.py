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
            raise EOFError from None

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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "play",
            "--preset",
            "seed_v1",
            "--seed",
            "2",
            "--no-color",
        ],
        input="1\n" * 7,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "week score" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_typed_reply_is_decoded_judged_and_confirmed():
    out = io.StringIO()
    answers = ["On it - SSH-ing into staging now, will clear the logs and restart myself.", "y"]
    answers += ["1"] * 20
    final = play("week_v2", seed=0, read=_reader(answers), out=out, color=False)
    text = out.getvalue()
    assert "read as fix_directly" in text and "message quality" in text
    assert final["history"][0] == {"event": "E1_staging", "action": "fix_directly"}


def test_a_declined_decoding_is_not_applied():
    out = io.StringIO()
    answers = ["I'll hand this to the on-call engineer", "n", "1"] + ["1"] * 20
    final = play("week_v2", seed=0, read=_reader(answers), out=out, color=False)
    assert "read as delegate_oncall" in out.getvalue()
    assert final["history"][0]["action"] == "fix_directly"


def test_play_in_a_pseudo_terminal_uses_colour_and_takes_keys():
    """Drive `wlf play` through a real pseudo-terminal: colours on, prompts answered."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "play", "--preset", "seed_v1", "--seed", "4"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"},
    )
    os.close(slave)
    buf, sent = b"", 0
    deadline = time.time() + 240
    try:
        while time.time() < deadline and b"week score" not in buf:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
            if buf.count(b"your move>") > sent:
                os.write(master, b"1\r")
                sent += 1
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = buf.decode(errors="replace")
    assert "week score" in text, text[-2000:]
    assert "\x1b[" in text  # ANSI colour codes in a terminal
    assert sent == 7
