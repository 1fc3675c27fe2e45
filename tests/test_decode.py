"""Decoders: keyword_v1 parity rules, the default decoder on labelled replies and hard cases."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llm_bridge import decode as D
from llm_bridge.decode_eval import evaluate_file
from wlf_jax.events import ACTION_NAMES, EVENT_IDS

DATA = Path(__file__).parent / "data"
HELDOUT = DATA / "replies_heldout.jsonl"
BLIND = DATA / "replies_blind.jsonl"


def act(event: str, text: str, decoder: str = "default") -> str:
    a, _ = D.decode(event, text, decoder)
    return D.action_label(EVENT_IDS.index(event), a)


# ---- keyword_v1: the original rules -------------------------------------------------------


@pytest.mark.parametrize(
    "event,text,want",
    [
        ("E1_staging", "I'll ssh in and restart it", "fix_directly"),
        ("E1_staging", "please delegate this to infra", "delegate_oncall"),  # first keyword wins
        ("E1_staging", "raise with INFRA", "escalate_infra"),
        ("E1_staging", "no keyword here", "fix_directly"),
        (
            "E2_slack",
            "I'll ignore it and call now later",
            "async_boundary",
        ),  # "later" is listed first
        ("E3_client_email", "So sorry, cc Sundar", "full_apology"),
        ("E4_leave", "I'll wait and cancel", "wait_hope"),
        ("E5_appraisal", "tonight, or an extension", "rush_tonight"),
        ("E6_oncall", "sure, but can't we swap?", "no_clearly_kindly"),
        ("E6_oncall", "yes, a swap", "counter_offer"),
        (
            "E7_standup",
            "I can't attend tonight",
            "attend_sacrifice",
        ),  # the original misreads negation
        (
            "S1_staging_relapse",
            "roll back",
            "take_over_fix",
        ),  # no list for spawned events: action 0
    ],
)
def test_keyword_v1_rules(event, text, want):
    assert act(event, text, "keyword_v1") == want
    assert ACTION_NAMES[EVENT_IDS.index(event)][D.keyword_v1(event, text)] == want


# ---- the corpus ---------------------------------------------------------------------------


def test_corpus_covers_every_event_and_action():
    rows = D.load_labelled(D.TRAIN_FILE) + D.load_labelled(HELDOUT)
    per_event = collections.Counter(r.event for r in rows)
    per_action = collections.Counter((r.event, r.action) for r in rows)
    for e in range(len(EVENT_IDS)):
        assert per_event[e] >= 60, EVENT_IDS[e]
        for a in range(3):
            assert per_action[(e, a)] >= 15, (EVENT_IDS[e], a)
    train = {r.text.strip().lower() for r in D.load_labelled(D.TRAIN_FILE)}
    assert not any(
        r.text.strip().lower() in train for r in D.load_labelled(HELDOUT) if r.text.strip()
    )


@pytest.mark.parametrize("path,overall,per_event", [(HELDOUT, 0.95, 0.85), (BLIND, 0.93, 0.75)])
def test_default_decoder_accuracy(path, overall, per_event):
    res = evaluate_file(path, "default", baseline="keyword_v1")
    assert res["accuracy"] >= overall, res["errors"][:5]
    assert min(res["per_event"].values()) >= per_event, res["per_event"]
    assert res["accuracy"] > res["baseline"]["accuracy"] + 0.3


# ---- hard cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event,text,want",
    [
        # negation
        (
            "E7_standup",
            "I won't be joining tonight, notes will be in your inbox by 9",
            "decline_async",
        ),
        (
            "E7_standup",
            "I can't attend the late call; I'll email a written summary instead",
            "decline_async",
        ),
        (
            "E6_oncall",
            "No, I can't take Wednesday this time. Hope it goes well.",
            "no_clearly_kindly",
        ),
        (
            "E2_slack",
            "Not ignoring you both - writing answers in the thread now, call at 4 if needed",
            "async_boundary",
        ),
        (
            "E3_client_email",
            "Hi David, I won't cc anyone else on this: the fix ships Thursday, update from me Wednesday.",
            "acknowledge_timeline",
        ),
        (
            "E4_leave",
            "I'm not going to cancel it. Messaging Sundar today to approve.",
            "ping_sundar",
        ),
        # distractors: another action's words used in passing
        (
            "E1_staging",
            "rahul can u ssh in and clear the logs? I'm stuck with the client",
            "delegate_oncall",
        ),
        (
            "E5_appraisal",
            "Not doing it tonight - blocking Wednesday afternoon for it",
            "block_wednesday",
        ),
        (
            "S3_client_reescalation",
            "Hi David, I won't promise tomorrow again. Honest plan: production Tuesday, checkpoint Friday.",
            "honest_plan",
        ),
        # implicit replies
        (
            "E1_staging",
            "$ df -h /var\n$ sudo journalctl --vacuum-size=1G\n$ sudo systemctl restart staging-api",
            "fix_directly",
        ),
        ("E5_appraisal", "Wed 3:00-4:30 PM - self appraisal", "block_wednesday"),
        ("E5_appraisal", "after dinner today, one sitting", "rush_tonight"),
        ("E7_standup", "Priya's got this one, I'll brief her at 6", "delegate_teammate"),
        # typos and shorthand
        ("E4_leave", "cancle the leve, not worth it", "cancel_leave"),
        ("E1_staging", "ill handel it myslf, clearing logs now", "fix_directly"),
        ("E7_standup", "cant make it 2nite, sending notes b4", "decline_async"),
        # Indian and US English, terse and long
        (
            "E4_leave",
            "Sundar sir, kindly approve my leave for Thursday today itself.",
            "ping_sundar",
        ),
        ("E6_oncall", "Sure thing, I got you - put me down for Wednesday.", "yes_people_pleaser"),
        ("E6_oncall", "swap?", "counter_offer"),
        ("S5_night_incident", "snooze", "snooze_alert"),
        (
            "E3_client_email",
            "Hi David,\n\nThank you for following up, and I completely understand the pressure from your VP. "
            "We traced the slow loads to an aggregation query that scans the full history. The fix is in review, "
            "QA signs off on Wednesday and it goes to production on Thursday. I'll send before/after numbers on Friday "
            "morning your time, and I'm not going to promise anything faster than that.\n\nBest regards,\nArjun",
            "acknowledge_timeline",
        ),
    ],
)
def test_hard_cases(event, text, want):
    assert act(event, text) == want


def test_keyword_v1_fails_the_negation_case():
    # documents why the default decoder exists
    assert act("E7_standup", "I can't attend tonight's call", "keyword_v1") == "attend_sacrifice"
    assert act("E7_standup", "I can't attend tonight's call") == "decline_async"


# ---- API behaviour ------------------------------------------------------------------------


def test_confidence_and_probabilities():
    dec = D.get_decoder()
    for event, text in [
        ("E2_slack", "calling you now"),
        ("E6_oncall", "asdf"),
        ("S6_thursday_exhaustion", ""),
    ]:
        d = dec.legible(event, text)  # the classifier alone always picks one of the three
        assert 0 <= d.action < 3 and 0.0 <= d.confidence <= 1.0
        assert abs(sum(d.probs) - 1.0) < 1e-6
        assert d.confidence == pytest.approx(max(d.probs))
    clear = dec.decode("E2_slack", "Sure, joining the huddle right now")
    vague = dec.decode("E2_slack", "hmm")
    assert clear.confidence > vague.confidence


def test_silence_is_unreadable():
    """No reply commits to no decision, even where one action is saying nothing (SPEC §5)."""
    for event, text in [
        ("E2_slack", ""),
        ("S2_slack_followup", "   "),
        ("S5_night_incident", "🙈"),
        ("E7_standup", "**Reply:**\n\n---"),
    ]:
        d = D.get_decoder().decode(event, text)
        assert d.unreadable and d.reason == "empty" and act(event, text) == "unreadable"


def test_deterministic_training_and_decoding():
    a, b = D.build_decoder(), D.build_decoder()
    for wa, wb in zip(a.weights, b.weights):
        assert np.array_equal(wa, wb)
    assert np.array_equal(a.gate.weights, b.gate.weights) and a.gate.bias == b.gate.bias
    texts = [r.text for r in D.load_labelled(BLIND)]
    events = [r.event for r in D.load_labelled(BLIND)]
    acts1, conf1 = a.decode_batch(events, texts)
    acts2, conf2 = D.decode_batch(events, texts)
    assert np.array_equal(acts1, acts2) and np.allclose(conf1, conf2)


def test_event_given_by_index_or_id():
    assert D.decode(6, "I'll skip it and send notes") == D.decode(
        "E7_standup", "I'll skip it and send notes"
    )


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown event"):
        D.decode("E9_nothing", "hi")
    with pytest.raises(KeyError, match="out of range"):
        D.decode(99, "hi")
    with pytest.raises(KeyError, match="unknown decoder"):
        D.get_decoder("magic")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"event": "E1_staging", "action": "teleport", "text": "x"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        D.load_labelled(bad)
    assert D.decode("E1_staging", None)[0] == D.UNREADABLE  # type: ignore[arg-type]


def test_import_stays_light():
    code = "import sys, llm_bridge.decode, llm_bridge.judge, llm_bridge.prompts; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_decode_eval_cli(tmp_path, capsys):
    from experiments.cli import main

    out = tmp_path / "res.json"
    assert main(["decode-eval", "--file", str(BLIND), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"decoder", "n", "accuracy", "per_event"} <= set(res)
    assert res["decoder"] == "hybrid_v2" and res["n"] == len(D.load_labelled(BLIND))
    assert set(res["per_event"]) == set(EVENT_IDS)
    text = capsys.readouterr().out
    assert "confusion" in text and "keyword_v1" in text


DEV_OPTIONS = D.DATA_DIR / "smollm2_dev_options.jsonl"


def test_prompt_folds_keep_a_prompt_in_one_fold():
    from llm_bridge.decode_eval import prompt_folds

    rows = D.load_labelled(DEV_OPTIONS)
    folds = prompt_folds(rows, 5, seed=0)
    assert set(folds) == {r.prompt for r in rows} and set(folds.values()) == set(range(5))
    sizes = [list(folds.values()).count(k) for k in range(5)]
    assert max(sizes) - min(sizes) <= 1
    assert prompt_folds(rows, 5, seed=0) == folds != prompt_folds(rows, 5, seed=1)
    with pytest.raises(ValueError, match="at least 2"):
        prompt_folds(rows, 1)
    with pytest.raises(ValueError, match="fewer than"):
        prompt_folds(rows[:3], 5)


def test_cross_validation_refits_the_gate_without_the_held_out_fold(monkeypatch):
    import llm_bridge.gate as G
    from llm_bridge.decode_eval import cross_validate, prompt_folds

    rows = D.load_labelled(DEV_OPTIONS)
    fitted: list[set] = []

    def record(dec, fit_rows, unreadable):  # no gate: the classifier alone decodes
        fitted.append({r.prompt for r in fit_rows if r.prompt})
        return None

    monkeypatch.setattr(G, "fit_gate", record)
    res = cross_validate(DEV_OPTIONS, folds=4, seed=3)
    folds = prompt_folds(rows, 4, seed=3)
    assert len(fitted) == 4 and res["n"] == len(rows) and res["groups"] == len(folds)
    for k, seen in enumerate(fitted):
        assert seen & set(folds) == {p for p, f in folds.items() if f != k}
    # without a gate only the rules flag a reply: fewer unreadable replies are caught
    assert res["per_class"]["unreadable"] < 0.39


def test_cross_validation_refuses_a_held_out_file():
    from experiments.cli import main

    with pytest.raises(SystemExit, match="held out already"):
        main(["decode-eval", "--file", str(BLIND), "--cv", "5"])


class _Fixed:
    """A decoder that reads every reply as a fixed list says."""

    name = "fixed"

    def __init__(self, actions):
        self.actions = iter(actions)

    def decode(self, event, text, prompt=None):
        return D.Decoded(next(self.actions), 1.0, (1 / 3, 1 / 3, 1 / 3))


def test_reader_agreement_counts_pairs_the_decoder_and_the_unanimous_replies():
    from llm_bridge.decode_eval import reader_agreement

    U = D.UNREADABLE
    rows = [D.LabelledReply(0, a, f"reply {i}") for i, a in enumerate([0, 1, 2, U])]
    res = reader_agreement(
        rows, {"b": [0, 1, 2, 2], "c": [0, 1, U, U]}, _Fixed([0, 2, 2, U]), first="a"
    )
    assert res["n"] == 4 and res["readers"] == ["a", "b", "c"]
    assert res["pairwise"] == {"a ~ b": 0.75, "a ~ c": 0.75, "b ~ c": 0.5}
    assert res["decoder"] == {"a": 0.75, "b": 0.5, "c": 0.5}
    assert res["unreadable_share"] == {"a": 0.25, "b": 0.0, "c": 0.5, "decoder": 0.25}
    # replies 0 and 1 are labelled alike by all three; the decoder reads 0 right and 1 wrong
    assert res["unanimous_n"] == 2 and res["decoder_on_unanimous"] == 0.5
    with pytest.raises(ValueError, match="3 labels for 4"):
        reader_agreement(rows, {"b": [0, 1, 2]}, _Fixed([0] * 4))


def test_decode_eval_cli_compares_readers(tmp_path, capsys):
    from experiments.cli import main

    rows = [json.loads(line) for line in BLIND.read_text().splitlines() if line.strip()]
    same = tmp_path / "same.jsonl"
    same.write_text(
        "".join(json.dumps({"event": r["event"], "action": r["action"]}) + "\n" for r in rows)
    )
    flipped = tmp_path / "flipped.jsonl"  # another reader: the first reply called unreadable
    lines = same.read_text().splitlines()
    lines[0] = json.dumps({"event": rows[0]["event"], "action": "unreadable"})
    flipped.write_text("\n".join(lines) + "\n")
    out = tmp_path / "res.json"
    argv = ["decode-eval", "--file", str(BLIND), "--baseline", "none", "--json", str(out)]
    assert main([*argv, "--readers", str(same), str(flipped)]) == 0
    res = json.loads(out.read_text())["readers"]
    n = len(rows)
    assert res["readers"] == [BLIND.stem, "same", "flipped"]
    assert res["pairwise"][f"{BLIND.stem} ~ same"] == 1.0
    assert res["pairwise"]["same ~ flipped"] == pytest.approx((n - 1) / n)
    assert res["unanimous_n"] == n - 1
    assert (
        res["decoder"][BLIND.stem]
        == res["decoder"]["same"]
        == pytest.approx(json.loads(out.read_text())["accuracy"])
    )
    assert "readers' agreement" in capsys.readouterr().out
    # a labels file for other replies is refused, naming the line
    wrong = tmp_path / "wrong.jsonl"
    other = next(e for e in EVENT_IDS if e != rows[0]["event"])
    wrong.write_text("\n".join([json.dumps({"event": other, "action": "unreadable"}), *lines[1:]]))
    with pytest.raises(SystemExit, match="wrong.jsonl:1: event"):
        main([*argv, "--readers", str(wrong)])
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]))
    with pytest.raises(SystemExit, match=f"{n - 1} labels for {n}"):
        main([*argv, "--readers", str(short)])
    # rows numbered by the labelling guide's "i" must be in the file's order
    numbered = [json.dumps({"i": i, **json.loads(x)}) for i, x in enumerate(lines)]
    numbered[0], numbered[1] = numbered[1], numbered[0]
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("\n".join(numbered))
    with pytest.raises(SystemExit, match="swapped.jsonl:1: row number 1 on line 1"):
        main([*argv, "--readers", str(swapped)])
    with pytest.raises(SystemExit, match="each --readers file once"):
        main([*argv, "--readers", str(same), str(same)])
    with pytest.raises(SystemExit, match="leave --cv out"):
        main([*argv, "--cv", "5", "--readers", str(same)])


def benchmark_decoder() -> dict:
    """Print the default decoder's throughput on all labelled replies (not a timed test).

    Run: ``python tests/test_decode.py`` or ``wlf decode-eval --file F --bench``.
    """
    from llm_bridge.decode_eval import benchmark

    rows = D.load_labelled(D.TRAIN_FILE) + D.load_labelled(HELDOUT) + D.load_labelled(BLIND)
    return benchmark([r.text for r in rows], [r.event for r in rows])


def test_benchmark_runs():
    from llm_bridge.decode_eval import benchmark

    rows = D.load_labelled(BLIND)
    res = benchmark([r.text for r in rows], [r.event for r in rows], repeats=1, verbose=False)
    assert res["messages"] == len(rows) and res["cpu_msgs_per_s"] > 0


if __name__ == "__main__":
    benchmark_decoder()
