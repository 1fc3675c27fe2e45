"""LLM weeks: scripted writers through decoder, judge and simulator; the eval-llm command."""

from __future__ import annotations

import json

import pytest

from llm_bridge.decode import UNREADABLE, action_label, decode
from llm_bridge.llm_policy import play_weeks
from llm_bridge.writers import SCRIPTS, ScriptedWriter
from wlf_jax.events import EVENT_IDS

# What each persona means to do, event by event.
INTENT = {
    "people_pleaser": {
        "E1_staging": 0,
        "E2_slack": 1,
        "E3_client_email": 1,
        "E5_appraisal": 1,
        "E6_oncall": 1,
        "E7_standup": 1,
        "S1_staging_relapse": 0,
        "S2_slack_followup": 1,
        "S3_client_reescalation": 1,
        "S4_leave_conflict": 1,
        "S5_night_incident": 0,
        "S6_thursday_exhaustion": 1,
    },
    "stonewaller": {
        "E1_staging": 2,
        "E2_slack": 2,
        "E3_client_email": 2,
        "E4_leave": 1,
        "E5_appraisal": 2,
        "E6_oncall": 0,
        "E7_standup": 0,
        "S1_staging_relapse": 2,
        "S2_slack_followup": 2,
        "S3_client_reescalation": 2,
        "S4_leave_conflict": 2,
        "S5_night_incident": 2,
        "S6_thursday_exhaustion": 2,
    },
    "strategic": {
        "E1_staging": 0,
        "E2_slack": 0,
        "E3_client_email": 0,
        "E4_leave": 0,
        "E5_appraisal": 0,
        "E6_oncall": 0,
        "E7_standup": 0,
        "S1_staging_relapse": 1,
        "S2_slack_followup": 0,
        "S3_client_reescalation": 0,
        "S4_leave_conflict": 0,
        "S5_night_incident": 1,
        "S6_thursday_exhaustion": 0,
    },
}


@pytest.mark.parametrize("persona", sorted(SCRIPTS))
def test_scripts_cover_every_event_and_decode_as_meant(persona):
    assert set(SCRIPTS[persona]) == set(EVENT_IDS)
    for event, want in INTENT[persona].items():
        for text in SCRIPTS[persona][event]:
            got, _ = decode(event, text)
            # silence commits to no decision: unreadable (SPEC §5), even where ignoring is an action
            expected = UNREADABLE if not text.strip() else want
            assert got == expected, (
                persona,
                event,
                text,
                action_label(EVENT_IDS.index(event), got),
            )


@pytest.fixture(scope="module")
def weeks():
    return {p: play_weeks(ScriptedWriter(p), preset="week_v2", n_weeks=8, seed=1) for p in SCRIPTS}


def test_summary_shape_and_ranges(weeks):
    s = weeks["strategic"].summary
    for key in (
        "weeks",
        "mean_score",
        "ci95_score",
        "mean_return",
        "components",
        "energy_by_day",
        "early_end_rate",
        "action_freq",
        "mean_quality",
        "agent",
        "preset",
    ):
        assert key in s, key
    assert s["weeks"] == 8 and s["agent"] == "scripted:strategic" and s["preset"] == "week_v2"
    assert 0.0 <= s["mean_score"] <= 1.0 and len(s["energy_by_day"]) == 5
    for freq in s["action_freq"].values():
        assert len(freq) == 3 and abs(sum(freq) - 1.0) < 1e-9


def test_judged_quality_reaches_the_simulator(weeks):
    for res in weeks.values():
        s = res.summary
        # the rubric's communication component is the mean judged quality, not the template's
        assert abs(s["components"]["communication_quality"] - s["mean_quality"]) < 0.05


def test_strategic_writing_beats_the_extremes(weeks):
    score = {p: r.summary["mean_score"] for p, r in weeks.items()}
    assert score["strategic"] > score["people_pleaser"] + 0.2
    assert score["strategic"] > score["stonewaller"] + 0.2
    assert (
        weeks["people_pleaser"].summary["early_end_rate"]
        > weeks["strategic"].summary["early_end_rate"]
    )


def test_transcript(weeks):
    rows = weeks["strategic"].transcript
    assert rows and {r["week"] for r in rows} == {0, 1, 2}
    r = rows[0]
    assert r["event"] == "E1_staging" and r["action"] == "fix_directly" and r["step"] == 0
    assert "It is Monday" in r["prompt"] and r["reply"] in SCRIPTS["strategic"]["E1_staging"]
    assert 0.0 <= r["quality"] <= 1.0


def test_eval_llm_scripted_cli(tmp_path, capsys):
    from experiments.cli import main

    out, tr = tmp_path / "res.json", tmp_path / "t.jsonl"
    assert (
        main(
            [
                "eval-llm",
                "--policy",
                "scripted",
                "--persona",
                "stonewaller",
                "--weeks",
                "8",
                "--json",
                str(out),
                "--transcript",
                str(tr),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert list(res["agents"]) == ["scripted:stonewaller"] and res["preset"] == "week_v2"
    assert tr.read_text().count("\n") >= 7
    assert "week score" in capsys.readouterr().out


def test_eval_llm_writes_its_default_transcript_under_wlf_out(tmp_path, monkeypatch):
    from experiments.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["eval-llm", "--policy", "scripted", "--weeks", "2", "--transcript-weeks", "1"]
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wlf_out"]
    assert (tmp_path / "wlf_out" / "eval_llm_transcript.jsonl").read_text().count("\n") >= 5


def test_eval_llm_needs_a_model():
    from experiments.cli import main

    assert main(["eval-llm", "--weeks", "2"]) == 2  # ValueError -> exit status 2
    with pytest.raises(KeyError):
        ScriptedWriter("nobody")


def test_play_weeks_reads_replies_with_a_decoder_object(weeks):
    """A decoder object replaces the named one: here every reply is read as the worst action
    (unreadable), where the named decoder reads the strategic script's replies as legible."""
    from llm_bridge.decode import UNREADABLE, Decoded

    class Unreadable:
        name = "all unreadable"

        def decode(self, event, text, prompt=None):
            return Decoded(UNREADABLE, 1.0, (1 / 3, 1 / 3, 1 / 3), "no_decision")

    res = play_weeks(ScriptedWriter("strategic"), preset="week_v2", n_weeks=8, seed=1,
                     decoder=Unreadable(), transcript_weeks=0)  # fmt: skip
    assert res.summary["decoder"] == "all unreadable" and res.summary["unreadable_rate"] == 1.0
    assert weeks["strategic"].summary["unreadable_rate"] == 0.0
    assert res.summary["week_score"] < weeks["strategic"].summary["week_score"] - 0.2


def test_eval_llm_records_replies_and_reads_them_by_labels(tmp_path):
    """--replies-out lists every distinct reply with its count; --labels reads a reply as
    labelled (its decoder reading gives the same weeks; an unreadable label makes it the worst
    action) and any reply the labels lack by the decoder, counted as unlabelled."""
    from experiments.cli import main

    base = ["eval-llm", "--policy", "scripted", "--persona", "strategic", "--weeks", "8"]
    base += ["--seed", "1", "--transcript", str(tmp_path / "t.jsonl")]

    def run(*extra):
        out = tmp_path / "res.json"
        assert main([*base, *extra, "--json", str(out)]) == 0
        return json.loads(out.read_text())["agents"]["scripted:strategic"]

    replies = tmp_path / "replies.jsonl"
    plain = run("--replies-out", str(replies))
    rows = [json.loads(line) for line in replies.read_text().splitlines()]
    assert [r["i"] for r in rows] == list(range(len(rows)))
    assert sum(r["count"] for r in rows) == plain["replies"]
    assert all(r["text"] in SCRIPTS["strategic"][r["event"]] for r in rows)

    def labels(name, pick):
        path = tmp_path / name
        lines = [{"event": r["event"], "text": r["text"], "action": pick(r)} for r in rows]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines if x["action"] is not None))
        return str(path)

    as_decoded = labels("same.jsonl", lambda r: decode(r["event"], r["text"])[0])
    same = run("--labels", as_decoded)
    assert same["week_score"] == plain["week_score"]
    assert (same["labelled"], same["unlabelled"]) == (plain["replies"], 0)

    oncall = labels("e6.jsonl", lambda r: "unreadable" if r["event"] == "E6_oncall" else None)
    e6 = run("--labels", oncall)
    n_e6 = sum(r["count"] for r in rows if r["event"] == "E6_oncall")
    assert n_e6 > 0 and e6["unreadable"] == n_e6 and e6["labelled"] == n_e6
    # the worst action on E6 spawns other events, so this week has more replies than before
    assert e6["unlabelled"] == e6["replies"] - n_e6 and e6["replies"] != plain["replies"]
    assert e6["week_score"] < plain["week_score"]

    clash = tmp_path / "clash.jsonl"
    r = next(r for r in rows if r["event"] == "E6_oncall")
    clash.write_text("".join(json.dumps({**r, "action": a}) + "\n" for a in (0, "unreadable")))
    assert main([*base, "--labels", str(clash)]) == 2
