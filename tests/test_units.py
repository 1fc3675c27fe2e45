"""Direct unit tests of rules that the end-to-end tests only reach by accident: GAE across a
week's end, PPO's clipping, each anti-gaming gate of the judge alone near its threshold, the
decoder's negation marks, the exact solvers' tie-breaking on a rule book built to have ties,
and each validation rule of the server."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

# -- GAE and the PPO loss ----------------------------------------------------------------------


def _gae_reference(reward, value, done, last_value, gamma, lam):
    """Plain-Python GAE over a time-major (T, N) rollout; ``done[t]``: the week ended with t."""
    T, N = reward.shape
    adv = np.zeros((T, N))
    for n in range(N):
        next_adv, next_value = 0.0, last_value[n]
        for t in reversed(range(T)):
            keep = 0.0 if done[t, n] else 1.0
            delta = reward[t, n] + gamma * next_value * keep - value[t, n]
            next_adv = delta + gamma * lam * keep * next_adv
            next_value = value[t, n]
            adv[t, n] = next_adv
    return adv, adv + value


def test_gae_equals_the_reference_with_weeks_ending_inside_the_rollout():
    from agents.ppo import gae

    rng = np.random.default_rng(0)
    T, N = 16, 5
    reward, value = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    done = rng.random((T, N)) < 0.25
    done[3, 0] = True  # every column has a week end inside the rollout
    last = rng.normal(size=(N,))
    adv, ret = gae(
        jnp.asarray(reward), jnp.asarray(value), jnp.asarray(done), jnp.asarray(last), 0.97, 0.9
    )
    want_adv, want_ret = _gae_reference(reward, value, done, last, 0.97, 0.9)
    np.testing.assert_allclose(np.asarray(adv), want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-5)


def test_gae_does_not_leak_across_a_week_boundary():
    """Rewards and values after the week that ended at step 2 do not reach steps 0..2."""
    from agents.ppo import gae

    reward = jnp.array([[1.0], [0.0], [2.0], [100.0], [100.0]])
    value = jnp.array([[0.5], [0.2], [0.1], [50.0], [50.0]])
    done = jnp.array([[False], [False], [True], [False], [False]])
    adv, _ = gae(reward, value, done, jnp.array([999.0]), gamma=1.0, lam=1.0)
    # with gamma = lam = 1 the advantage is the week's remaining return minus the value
    np.testing.assert_allclose(np.asarray(adv[:3, 0]), [3.0 - 0.5, 2.0 - 0.2, 2.0 - 0.1], atol=1e-6)
    # the next week bootstraps from the last value
    np.testing.assert_allclose(
        np.asarray(adv[3:, 0]), [100 + 100 + 999 - 50.0, 100 + 999 - 50.0], atol=1e-3
    )


def test_ppo_actor_loss_is_clipped_on_both_sides():
    """With one sample, the clipped surrogate is -min(r A, clip(r) A): for A > 0 the ratio's
    gain stops at 1 + eps, for A < 0 at 1 - eps (normalised advantages: A = +-1 from two
    samples)."""
    from agents.ppo import ppo_loss

    eps = 0.2

    def run(ratio_first, ratio_second):
        # the network's output is read off its parameters and its input (a wrong argument shows)
        params = {"logits": jnp.log(jnp.array([0.5, 0.25, 0.25]))}

        def apply_fn(params, obs):
            return params["logits"][None, :] + 0.0 * obs, jnp.zeros((obs.shape[0],))

        batch = {
            "obs": jnp.zeros((2, 3)),
            "action": jnp.array([0, 0]),
            "logp": jnp.log(jnp.array([0.5 / ratio_first, 0.5 / ratio_second])),
            "adv": jnp.array([1.0, -1.0]),  # normalised to about +1 and -1
            "value": jnp.zeros((2,)),
            "ret": jnp.zeros((2,)),
        }
        _, (actor, critic, entropy) = ppo_loss(params, apply_fn, batch, eps, 0.5, 0.0)
        return float(actor)

    a = 1.0 / (np.std([1.0, -1.0]) + 1e-8)
    # ratios inside the clip range: plain surrogate
    assert run(1.1, 0.9) == pytest.approx(-(1.1 * a - 0.9 * a) / 2, rel=1e-5)
    # ratio 1.5 with A > 0 counts as 1.2; ratio 0.5 with A < 0 counts as 0.8
    assert run(1.5, 0.5) == pytest.approx(-(1.2 * a - 0.8 * a) / 2, rel=1e-5)
    # pessimistic side is never clipped: ratio 0.5 with A > 0, ratio 1.5 with A < 0
    assert run(0.5, 1.5) == pytest.approx(-(0.5 * a - 1.5 * a) / 2, rel=1e-5)


def test_ppo_critic_loss_clips_the_value_change_and_entropy_is_exact():
    """Value clipping: the new value may move at most eps from the rollout's value, and the
    larger of the clipped and unclipped squared errors counts; entropy of the given policy."""
    from agents.ppo import ppo_loss

    eps = 0.2
    probs = jnp.array([0.5, 0.25, 0.25])
    params = {"logits": jnp.log(probs), "value": jnp.array([0.5, -0.5, 0.1])}

    def apply_fn(params, obs):
        return params["logits"][None, :] + 0.0 * obs, params["value"]

    batch = {
        "obs": jnp.zeros((3, 3)),
        "action": jnp.array([0, 1, 2]),
        "logp": jnp.log(probs[jnp.array([0, 1, 2])]),
        "adv": jnp.array([1.0, -1.0, 0.5]),
        "value": jnp.array([0.4, -0.1, 0.0]),  # the rollout's values
        "ret": jnp.array([0.0, -2.0, 0.3]),
    }
    total, (actor, critic, entropy) = ppo_loss(params, apply_fn, batch, eps, 0.5, 0.01)
    old, new, ret = (
        np.array([0.4, -0.1, 0.0]),
        np.array([0.5, -0.5, 0.1]),
        np.array([0.0, -2.0, 0.3]),
    )
    clipped = old + np.clip(new - old, -eps, eps)  # (0.5, -0.3, 0.1)
    want = 0.5 * np.maximum((new - ret) ** 2, (clipped - ret) ** 2).mean()
    assert float(critic) == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(0.5 * np.mean([0.25, 2.89, 0.04]))
    assert float(total) == pytest.approx(
        float(actor) + 0.5 * want - 0.01 * float(entropy), rel=1e-5
    )
    p = np.array([0.5, 0.25, 0.25])
    assert float(entropy) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-5)
    # ratios of exactly 1 (log-probs equal): the actor loss is minus the mean normalised advantage
    assert float(actor) == pytest.approx(0.0, abs=1e-6)


# -- the judge's gates, each alone ---------------------------------------------------------------


def _words(text):
    from llm_bridge.judge import _WORD

    return _WORD.findall(text.lower())


def test_repetition_gate_trigram_threshold_and_slope():
    from llm_bridge.judge import _repetition_gate

    fresh = [f"w{i}" for i in range(20)]
    assert _repetition_gate(fresh, "x") == 1.0
    # 20 words = 18 trigrams; ending with the first k+2 words repeats k trigrams: rep = k / 18
    two = fresh[:16] + fresh[:4]  # 2 of 18 repeat: 0.111 <= 0.15, open
    four = fresh[:14] + fresh[:6]  # 4 of 18 repeat: 0.222 > 0.15, gated
    assert _repetition_gate(two, "x") == 1.0
    assert _repetition_gate(four, "x") == pytest.approx(1.0 - (4 / 18 - 0.15) / 0.35)


def test_repetition_gate_top_word_share_threshold():
    from llm_bridge.judge import _repetition_gate

    # 12 words, each trigram distinct; "ok" fills 3 (25%: open) or 4 (33%: gated) of them
    base = [f"w{i}" for i in range(12)]
    three = base.copy()
    for i in (0, 4, 8):
        three[i] = "ok"
    four = three.copy()
    four[11] = "ok"
    assert _repetition_gate(three, "x") == 1.0
    assert _repetition_gate(four, "x") == pytest.approx(1.0 - (4 / 12 - 0.25) / 0.25)


def test_repetition_gate_duplicate_sentences_and_compressibility():
    from llm_bridge.judge import _repetition_gate

    s = "I can take the Thursday call at four"
    words = [f"w{i}" for i in range(8)]
    other = ["Notes will follow by nine tonight", "The runbook is in the wiki for all"]
    # 1 duplicate in 4 sentences (dup 0.25 > 0.2) is gated; 1 in 5 (0.2) is not
    gated = ". ".join([s, s, *other]) + "."
    open_ = ". ".join([s, s, *other, "Happy to swap the Friday slot instead"]) + "."
    assert _repetition_gate(words, gated) == pytest.approx(max(0.05, 1.0 - 0.25 * 1.5))
    assert _repetition_gate(words, open_) == 1.0
    # a long, very compressible text is gated by its compression ratio
    blob = "abc " * 200
    ratio = len(__import__("zlib").compress(blob.encode())) / len(blob.encode())
    assert ratio < 0.3
    assert _repetition_gate(words, blob) == pytest.approx(max(0.05, ratio / 0.3))


def test_stuffing_gate_density_times_and_runs():
    from llm_bridge.judge import _stuffing_gate

    # signal density: 4 rewarded words (thanks, update, plan, tonight) in 7 (0.57 > 0.45) is
    # gated; the same 4 in 10 (0.4) are not
    dense = "thanks i will update the plan tonight"
    sparse = "thanks i will update you on the plan tonight ok"
    d = _stuffing_gate(_words(dense), dense.lower())
    assert d == pytest.approx(max(0.1, 1.0 - (4 / 7 - 0.45) / 0.25))
    assert _stuffing_gate(_words(sparse), sparse.lower()) == 1.0
    # just above the threshold: 4 in 8 (0.5) is gated already
    edge = "thanks i will update the plan for tonight"
    assert _stuffing_gate(_words(edge), edge) == pytest.approx(1.0 - (0.5 - 0.45) / 0.25)
    # short replies are never gated
    assert _stuffing_gate(_words("thanks update eod plan"), "thanks update eod plan") == 1.0


def test_stuffing_gate_long_run_of_content_words():
    from llm_bridge.judge import _stuffing_gate

    eight = "and then staging logs restart runbook ticket handover calendar notes and so on"
    nine = "and then staging logs restart runbook ticket handover calendar notes slot and so on"
    g8 = _stuffing_gate(_words(eight), eight)
    g9 = _stuffing_gate(_words(nine), nine)
    assert g9 < g8
    assert g9 <= max(0.1, 1.0 - (9 - 8) * 0.15) + 1e-9


def test_junk_gate_alpha_ratio_and_echo():
    from llm_bridge.judge import _junk_gate
    from wlf_jax.events import EVENTS

    event = EVENTS[0]
    ok = "I am restarting the staging service now and will post the logs by noon."
    assert _junk_gate(ok, ok.lower(), event.id) == 1.0
    # letters under 60% of the visible characters close the gate linearly down to 20%
    forty = "staging 1234 restart 56789012 logs 345678"  # 18 letters of 36 visible: 0.5
    assert _junk_gate(forty, forty.lower(), event.id) == pytest.approx((0.5 - 0.2) / 0.4)
    # control characters close the gate
    assert _junk_gate("ok\x07 fine", "ok\x07 fine", event.id) == 0.0
    # echoing the incoming message back is gated
    echo = event.body
    assert _junk_gate(echo, echo.lower(), event.id) <= 0.2


def test_stuffing_gate_length_floor_and_signal_count():
    from llm_bridge.judge import _stuffing_gate

    # six words are judged, five never: 5 rewarded words of 6 close the gate to its floor
    six = "thanks update plan tonight eod ok"
    assert _stuffing_gate(_words(six), six) == pytest.approx(0.1)
    five = "thanks update plan tonight eod"
    assert _stuffing_gate(_words(five), five) == 1.0
    # a dense reply needs four rewarded words: three in six (0.5 > 0.45) stay open
    three = "thanks for the update tonight ok"
    assert _stuffing_gate(_words(three), three) == 1.0


def test_stuffing_gate_time_expressions():
    from llm_bridge.judge import _stuffing_gate

    def gate(k):  # k distinct clock times in a reply padded with function words
        text = " and ".join(f"at {h} am" for h in range(1, k + 1)) + " is what we said to them"
        return _stuffing_gate(_words(text), text)

    assert gate(4) == 1.0
    assert gate(5) == pytest.approx(0.8)  # 1 - 0.2 * (5 - 4)
    assert gate(6) == pytest.approx(0.6)
    assert gate(9) == pytest.approx(0.1)  # the floor


def test_stuffing_gate_run_length_counts_from_the_first_word():
    from llm_bridge.judge import FUNCTION_WORDS, _stuffing_gate

    content = "purple elephants quietly eat green apples beside old wooden bridges daily".split()
    assert not set(content) & FUNCTION_WORDS

    def gate(run, lead=""):
        text = (lead + " ".join(content[:run]) + " and we went to the sea").strip()
        return _stuffing_gate(_words(text), text)

    assert gate(8) == 1.0
    assert gate(9) == pytest.approx(0.85)  # 1 - 0.15 * (9 - 8)
    assert gate(10) == pytest.approx(0.7)
    assert gate(9, lead="so ") == pytest.approx(0.85)  # a function word resets the run to 0
    text = " ".join(content * 2)  # a run of 22: the floor
    assert _stuffing_gate(_words(text), text) == pytest.approx(0.1)


def test_repetition_gate_length_floor_and_top_word_needs_twelve_words():
    from llm_bridge.judge import _repetition_gate

    # eight words are judged: abcabcab has 3 distinct trigrams of 6 (rep 0.5): the floor
    assert _repetition_gate(list("abcabcab"), "x") == pytest.approx(0.05)
    assert _repetition_gate(list("abcabca"), "x") == 1.0  # seven words are not
    # a dominant word (3 of 8) in a reply under twelve words, no repeated trigram: open
    assert _repetition_gate("ok a ok b ok c d e".split(), "x") == 1.0


def test_relevance_tokens_drop_stop_words_numbers_and_single_letters():
    from llm_bridge.judge import _content_tokens

    # the relevance gate's topic profiles are built from these tokens
    text = "I will restart the x staging box at 5 pm, thanks ok qa"
    assert _content_tokens(text) == ["restart", "staging", "box", "pm", "qa"]


def test_repetition_gate_sentence_rules():
    from llm_bridge.judge import _repetition_gate

    words = [f"w{i}" for i in range(8)]
    # three sentences of which two are the same (dup 1/3) are gated; two sentences are not
    three = "We can swap Thursday. We can swap Thursday. Notes follow tonight."
    assert _repetition_gate(words, three) == pytest.approx(1.0 - 1.5 / 3)
    assert _repetition_gate(words, "We can swap Thursday. We can swap Thursday.") == 1.0
    # a sentence counts from 11 characters: "abcdefghij" (10) is ignored, "abcdefghijk" is not
    ten = "abcdefghij. abcdefghij. We can swap Thursday."
    eleven = "abcdefghijk. abcdefghijk. We can swap Thursday."
    assert _repetition_gate(words, ten) == 1.0
    assert _repetition_gate(words, eleven) == pytest.approx(1.0 - 1.5 / 3)
    # sentences are compared in lower case, not folded further ("strasse" is not "straße")
    folded = "Meet at the Straße now. Meet at the Strasse now. Notes follow tonight."
    assert _repetition_gate(words, folded) == 1.0


def test_repetition_gate_compression_needs_over_300_bytes():
    from llm_bridge.judge import _repetition_gate

    words = [f"w{i}" for i in range(8)]
    assert _repetition_gate(words, "a" * 300) == 1.0
    ratio = len(__import__("zlib").compress(b"a" * 301)) / 301
    assert _repetition_gate(words, "a" * 301) == pytest.approx(max(0.05, ratio / 0.3))
    # undecodable text (a lone surrogate) is replaced, not an error
    assert _repetition_gate(words, "ok \ud800 " * 40) == 1.0


def test_junk_gate_empty_and_symbol_only_replies():
    from llm_bridge.judge import _junk_gate

    event = "E1_staging"
    assert _junk_gate("   \n ", "   \n ", event) == 0.0  # nothing visible
    assert _junk_gate("!!! ??? ...", "!!! ??? ...", event) == 0.0  # no letters
    # letters but no word of the alphabet the lexicon knows (Cyrillic): at most 0.1
    assert _junk_gate("да да хорошо", "да да хорошо", event) == pytest.approx(0.1)


def test_junk_gate_alpha_ratio_exactly_at_the_threshold():
    from llm_bridge.judge import _junk_gate

    # 12 letters of 20 visible characters: exactly 0.6, where the gate is still fully open
    # (the slope below gives (0.6 - 0.2) / 0.4 = 0.9999999999999999 in floating point)
    text = "restart stage 12345678"
    assert sum(c.isalpha() for c in text) / sum(not c.isspace() for c in text) == 0.6
    assert _junk_gate(text, text.lower(), "E1_staging") == 1.0


def test_junk_gate_known_word_share():
    from llm_bridge.judge import _junk_gate, _profiles

    lexicon = _profiles()[2]
    known = ["restart", "staging", "logs", "ticket"]
    assert all(w in lexicon for w in known)
    unknown = ["zorbel", "quintavo", "plimsy"]  # pronounceable, half a known word each
    mash = ["xkcdq", "zzkrt", "bvnmq"]  # no vowel: not a word at all
    assert not set(unknown + mash) & lexicon

    def gate(ws):
        text = " ".join(ws)
        return _junk_gate(text, text, "E1_staging")

    assert gate(known[:3] + mash[:2]) == 1.0  # 3 of 5 known: exactly 0.6, open
    assert gate(known[:2] + mash[:3]) == pytest.approx(0.5)  # 0.4: (0.4 - 0.2) / 0.4
    assert gate(known[:1] + unknown[:2] + mash[:1]) == pytest.approx(0.75)  # (1 + 2 x 0.5) / 4
    assert gate(mash[:3] + unknown[:1]) == pytest.approx(0.0)  # 0.125: closed
    # an 18-letter pronounceable word counts half, a 19-letter one nothing; so does a word
    # without a vowel, or with five consonants in a row
    third = pytest.approx((1 / 3 - 0.2) / 0.4)
    assert gate(known[:1] + ["banalamanatanapaka"] * 2) == 1.0  # (1 + 2 x 0.5) / 3
    assert gate(known[:1] + ["banalamanatanapakas"] * 2) == third
    assert gate(known[:1] + ["astrngth"] * 2) == third
    assert gate(known[:1] + ["pst", "grr"]) == third


def test_junk_gate_long_unbroken_runs():
    from llm_bridge.judge import _junk_gate

    words = "i will restart the staging server and post the logs with token"
    mixed = "aB" * 20  # 40 characters of both cases: base64-like
    text = f"{words} {mixed}"
    assert _junk_gate(text, text.lower(), "E1_staging") == pytest.approx(0.2)
    short = f"{words} {'aB' * 19}c"  # 39 characters: not a run
    assert _junk_gate(short, short.lower(), "E1_staging") == 1.0


def test_junk_gate_echo_share_of_five_grams():
    from llm_bridge.judge import _WORD, _junk_gate
    from wlf_jax.events import EVENTS

    event = EVENTS[0]
    body = _WORD.findall(event.body.lower())
    tail = ["restart", "server"]
    # 6 words of the message + 2 others: 2 of 4 five-grams are the message's (0.5): open
    half = " ".join(body[:6] + tail)
    assert _junk_gate(half, half, event.id) == 1.0
    # 7 + 2: 3 of 5 (0.6 > 0.5): an echo
    more = " ".join(body[:7] + tail)
    assert _junk_gate(more, more, event.id) == pytest.approx(0.2)


# -- the decoder's negation marks ----------------------------------------------------------------


def test_negation_scope_marks_the_rejected_option_only():
    from llm_bridge.textnorm import normalize

    def marked(text):
        n = normalize(text)
        return {t for t, neg in zip(n.tokens, n.negated) if neg}

    assert {"cover", "wednesday"} <= marked("I will not cover Wednesday")
    assert "send" not in marked("I won't join, but I'll send notes by 9")
    assert "join" in marked("I won't join, but I'll send notes by 9")
    assert "joining" in marked("rather than joining the call, I will send notes")
    assert not marked("No worries, I will cover it")  # an idiom, not a negation


def test_decoder_features_carry_the_negation():
    """A negated word and the same word asserted give different features, so the decoder can
    read "I will not cover" apart from "I will cover"."""
    from llm_bridge.decode import feature_keys
    from llm_bridge.textnorm import normalize

    neg = set(feature_keys("E3_oncall_swap", normalize("I will not cover Wednesday")))
    pos = set(feature_keys("E3_oncall_swap", normalize("I will cover Wednesday")))
    assert "w~:cover" in neg and "w:cover" not in neg
    assert "w:cover" in pos and "w~:cover" not in pos


# -- tie-breaking of the exact solvers -----------------------------------------------------------


def _tied_week_v2():
    """week_v2 with actions 1 and 2 of every event made identical: every state has a tie."""
    from wlf_jax import presets
    from wlf_jax.params import replace

    p = presets.week_v2()
    changes = {}
    for field in ("energy_delta", "sprint_delta", "trust_delta", "alt_prob", "alt_energy_delta",
                  "alt_sprint_delta", "alt_trust_delta", "status_set", "spawn",
                  "template_quality", "boundary_credit"):  # fmt: skip
        arr = np.asarray(getattr(p, field)).copy()
        arr[:, 2] = arr[:, 1]
        changes[field] = arr
    return replace(p, name="tied", **changes)


def test_host_solver_breaks_ties_to_the_lowest_action():
    from agents.exact import ExactSolver

    solver = ExactSolver(_tied_week_v2())
    (week,) = [w for _, w in solver.initial()]
    q = solver.q(week)
    assert q[1] == q[2]
    assert solver.optimal_action(week) == (1 if q[1] > q[0] else 0)
    # actions 1 and 2 have equal Q everywhere, so action 2 is never chosen
    ev = solver.evaluate(solver.optimal_policy())
    assert all(freq[2] == 0.0 for freq in ev.action_freq.values())


def test_table_solver_breaks_ties_to_the_lowest_action():
    from agents.exact import tables as TB
    from wlf_jax.compiled import compile_rules, optimal_values

    rules = compile_rules(_tied_week_v2())
    q, _ = optimal_values(rules)
    live = ~np.asarray(rules.done)
    q = np.asarray(q)[live]
    np.testing.assert_allclose(q[:, 1], q[:, 2], atol=1e-6)
    act = np.asarray(TB.optimal_policy(rules))[live]
    assert not np.any(act == 2)
    assert np.all(act == np.where(q[:, 1] > q[:, 0] + 1e-6, 1, act))


# -- the server's validation rules ---------------------------------------------------------------


def test_json_depth_and_integer_length_limits():
    from llm_bridge.serve.guards import MAX_INT_DIGITS, MAX_JSON_DEPTH, FrameProblem, parse_json

    deepest_ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(deepest_ok) is not None
    with pytest.raises(FrameProblem, match="nested deeper"):
        parse_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert parse_json("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    with pytest.raises(FrameProblem, match="digits"):
        parse_json("9" * (MAX_INT_DIGITS + 1))
    with pytest.raises(json.JSONDecodeError):
        parse_json("{not json")


def test_json_depth_counts_objects_and_arrays_past_scalars():
    from llm_bridge.serve.guards import MAX_JSON_DEPTH, FrameProblem, json_depth, parse_json

    assert json_depth(5) == 0 and json_depth("x") == 0
    assert json_depth([]) == 1 and json_depth({"a": [1, {"b": 2}]}) == 3
    objects = {}
    for _ in range(MAX_JSON_DEPTH):
        objects = {"a": objects}  # MAX + 1 levels of objects
    with pytest.raises(FrameProblem, match="nested deeper"):
        parse_json(json.dumps(objects))
    # a scalar beside the deep part (read first: the walk is last in, first out) does not stop
    # the count
    deep_after = "[" + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + ", 1]"
    assert json_depth(json.loads(deep_after)) == MAX_JSON_DEPTH + 1
    with pytest.raises(FrameProblem, match="nested deeper"):
        parse_json(deep_after)


def test_json_beyond_the_parser_and_undecodable_bytes_are_bad_requests():
    from llm_bridge.serve.guards import MAX_JSON_DEPTH, FrameProblem, parse_json

    with pytest.raises(FrameProblem) as err:  # deeper than Python's recursion limit
        parse_json("[" * 100_000 + "]" * 100_000)
    assert err.value.code == "bad_request"
    assert str(err.value) == f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    with pytest.raises(FrameProblem) as err:
        parse_json(b'"\xff\xfe"'.decode("unicode_escape").encode("latin-1"))
    assert err.value.code == "bad_request" and str(err.value).startswith("unreadable JSON (")
    assert "can't decode byte 0xff" in str(err.value)  # the decoder's reason is passed on


@pytest.mark.parametrize(
    ("seed", "status"),
    [(0, None), (2**32 - 1, None), (2**32, 400), (-1, 400), (True, 400), ("7", 400), (1.5, 400)],
)
def test_reset_seed_rule(seed, status):
    from llm_bridge.serve.guards import http_body_problem

    got = http_body_problem("/reset", json.dumps({"seed": seed}).encode())
    if status is None:
        assert got is None
    else:
        assert got[0] == status and got[1]["error"] == "invalid_seed"


def test_session_routes_rule():
    from llm_bridge.serve.guards import http_body_problem, ws_frame_problem

    body = json.dumps({"jsonrpc": "2.0", "method": "openenv/session/create", "id": 1}).encode()
    status, err = http_body_problem("/mcp", body)
    assert status == 403 and err["error"] == "session_routes_disabled"
    assert http_body_problem("/mcp", body, allow_session_routes=True) is None
    other = json.dumps({"jsonrpc": "2.0", "method": "tools/list", "id": 1}).encode()
    assert http_body_problem("/mcp", other) is None
    frame = {
        "type": "websocket.receive",
        "text": json.dumps({"type": "mcp", "data": json.loads(body)}),
    }
    assert ws_frame_problem(frame)[0] == "SESSION_ROUTES_DISABLED"
    assert ws_frame_problem(frame, allow_session_routes=True) is None


def test_step_action_type_rule():
    from llm_bridge.serve.guards import http_body_problem

    bad = json.dumps({"action": {"type": ["list"]}}).encode()
    status, err = http_body_problem("/step", bad)
    assert status == 422 and err["error"] == "invalid_action"
    fine = json.dumps({"action": {"type": "reply", "text": "ok"}}).encode()
    assert http_body_problem("/step", fine) is None


def test_websocket_frame_rules():
    from llm_bridge.serve.guards import MAX_JSON_DEPTH, ws_frame_problem

    assert ws_frame_problem({"type": "websocket.receive", "bytes": b"x"})[0] == "INVALID_JSON"
    assert ws_frame_problem({"type": "websocket.receive", "text": "[1, 2]"})[0] == "INVALID_JSON"
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert ws_frame_problem({"type": "websocket.receive", "text": deep})[0] == "BAD_REQUEST"
    assert (
        ws_frame_problem({"type": "websocket.receive", "text": "{oops"}) is None
    )  # the session answers
    ok = json.dumps({"type": "step", "data": {"text": "fine"}})
    assert ws_frame_problem({"type": "websocket.receive", "text": ok}) is None
    assert ws_frame_problem({"type": "websocket.disconnect"}) is None


def test_preset_and_episode_rules():
    import uuid

    from llm_bridge.serve.environment import (
        SEED_LIMIT,
        WeekError,
        check_episode_id,
        check_preset,
        check_seed,
        known_presets,
    )

    assert check_preset(None, "week_v2") == "week_v2"
    assert check_preset("seed_v1", "week_v2") == "seed_v1"
    for bad in ("week_v9", 3, ["week_v2"]):
        with pytest.raises(WeekError) as err:
            check_preset(bad, "week_v2")
        assert (err.value.code, err.value.status) == ("unknown_preset", 400)
        assert err.value.message == f"unknown preset {bad!r}; known: {', '.join(known_presets())}"
        assert str(err.value) == f"unknown_preset: {err.value.message}"
    assert check_episode_id("e" * 255) == "e" * 255
    fresh = check_episode_id(None)
    assert str(uuid.UUID(fresh)) == fresh and check_episode_id(None) != fresh
    for bad in (["not", "a", "string"], "e" * 256, 7):
        with pytest.raises(WeekError) as err:
            check_episode_id(bad)
        assert (err.value.code, err.value.status) == ("invalid_episode_id", 400)
        assert err.value.message == "episode_id must be a string of at most 255 characters"
    drawn = {check_seed(None) for _ in range(8)}
    assert len(drawn) > 1 and all(0 <= x < SEED_LIMIT for x in drawn)


def test_every_http_refusal_has_its_status_code_and_message():
    """The exact body of each refusal: status, error code, and a message that names the rule."""
    from llm_bridge.serve.guards import MAX_INT_DIGITS, MAX_JSON_DEPTH, http_body_problem

    deep = ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()
    assert http_body_problem("/step", deep) == (
        400,
        {"error": "bad_request", "detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"},
    )
    long_int = ("1" * (MAX_INT_DIGITS + 1)).encode()
    assert http_body_problem("/reset", long_int) == (
        400,
        {
            "error": "bad_request",
            "detail": f"an integer of {MAX_INT_DIGITS + 1} digits; the limit is {MAX_INT_DIGITS}",
        },
    )
    create = {"jsonrpc": "2.0", "method": "openenv/session/create", "id": 1}
    for body in (create, [{"jsonrpc": "2.0", "method": "tools/list", "id": 0}, create]):
        status, err = http_body_problem("/mcp", json.dumps(body).encode())
        assert status == 403 and err["error"] == "session_routes_disabled"
        assert err["detail"].startswith("openenv/session/create is off on this server: a session")
        assert "belongs to its WebSocket connection (/ws)" in err["detail"]
        assert err["detail"].endswith("start the server with --allow-session-routes to enable it")
    status, err = http_body_problem("/reset", b'{"seed": -1}')
    assert (status, err["error"]) == (400, "invalid_seed")
    assert err["detail"] == "seed must be an integer with 0 <= seed < 2**32, got -1"
    assert http_body_problem("/step", json.dumps({"action": {"type": {"a": 1}}}).encode()) == (
        422,
        {
            "error": "invalid_action",
            "detail": "the action does not match WeekAction",
            "errors": [
                {
                    "loc": ["type"],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
            ],
        },
    )
    # the action rule belongs to /step only, and empty or malformed bodies are FastAPI's
    assert http_body_problem("/reset", json.dumps({"action": {"type": ["x"]}}).encode()) is None
    assert http_body_problem("/step", b"   ") is None
    assert http_body_problem("/step", b"{broken") is None


def test_every_websocket_refusal_has_its_code_and_message():
    from llm_bridge.serve.guards import MAX_JSON_DEPTH, ws_frame_problem

    def frame(text=None, **kw):
        return {"type": "websocket.receive", "text": text, **kw}

    assert ws_frame_problem(frame(bytes=b"x")) == (
        "INVALID_JSON",
        "binary frames are not supported; send JSON text",
    )
    assert ws_frame_problem(frame("[1]")) == (
        "INVALID_JSON",
        'a message must be a JSON object such as {"type": "step", "data": {...}}',
    )
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert ws_frame_problem(frame(deep)) == (
        "BAD_REQUEST",
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
    )
    mcp = json.dumps({"type": "mcp", "data": {"method": "openenv/session/close"}})
    assert ws_frame_problem(frame(mcp)) == (
        "SESSION_ROUTES_DISABLED",
        "session create/close over MCP is off on this server",
    )


def test_atomic_write_replaces_whole_files_and_a_failed_write_leaves_no_temporary(tmp_path):
    from experiments.train.checkpoints import atomic_write

    path = tmp_path / "result.json"
    atomic_write(path, b"first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    blocked = tmp_path / "a_folder"
    (blocked / "inside").mkdir(parents=True)  # os.replace cannot put a file over a folder
    with pytest.raises(OSError):
        atomic_write(blocked, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder", "result.json"]


# -- the rubric ------------------------------------------------------------------------------------


def test_relationship_component_is_capped_at_one_when_the_weights_sum_past_one():
    """Each relationship weight is in [0, 1] but their sum is not bounded, so the weighted trust
    can pass 1; the component is capped at 1 in the JAX rubric and in the plain-Python one."""
    import jax

    from wlf_jax import WorkWeek, presets
    from wlf_jax.events import N_EVENTS
    from wlf_jax.params import replace, to_python
    from wlf_jax.reference import ReferenceWeek
    from wlf_jax.reward import components

    params = replace(presets.week_v2(), relationship_weights=np.ones(5, np.float32))
    _, state = WorkWeek().reset(jax.random.key(0), params)
    assert float(np.sum(np.asarray(state.trust))) / 100.0 > 1.5
    assert float(components(state, params)[4]) == 1.0
    ref = ReferenceWeek(to_python(params))
    w = ref.reset(list(np.asarray(params.slot_event)), [1.0] * N_EVENTS)
    assert ref.components(w)[4] == 1.0


# -- the decoder's decision gate -----------------------------------------------------------------

STANDUP = 6  # E7_standup: "Decline and send a written async update instead", "Attend the late
# standup", "Ask Priya to attend in your place"; an option line counts from max(2, 0.6 x size)


def _flat_gate(bias: float, threshold: float = 0.8):
    """A gate that ignores every feature: its probability is ``sigmoid(bias)`` for any reply."""
    from llm_bridge.gate import FEATURES, DecisionGate

    n = len(FEATURES)
    return DecisionGate(np.zeros(n), np.ones(n), np.zeros(n), bias, threshold)


def test_gate_probability_far_on_the_legible_side_is_zero_not_an_overflow():
    from llm_bridge.decode import get_decoder

    dec = get_decoder()
    text = "I will post async notes."
    assert _flat_gate(-1000.0).probability(dec, STANDUP, text) == 0.0  # exp(1000) would overflow
    assert _flat_gate(-400.0).probability(dec, STANDUP, text) == pytest.approx(
        math.exp(-400), rel=1e-9
    )
    assert _flat_gate(1000.0).probability(dec, STANDUP, text) == 1.0


def test_gate_flags_at_its_threshold_and_from_three_words():
    from llm_bridge.decode import get_decoder
    from llm_bridge.gate import MIN_WORDS

    dec = get_decoder()
    p = _flat_gate(1.3).probability(dec, STANDUP, "one two three")
    assert _flat_gate(1.3, threshold=p).flags(dec, STANDUP, "one two three")  # at the threshold
    assert not _flat_gate(1.3, threshold=np.nextafter(p, 1)).flags(dec, STANDUP, "one two three")
    assert MIN_WORDS == 3
    assert _flat_gate(50.0).flags(dec, STANDUP, "skip it tonight")  # three words: gated
    assert not _flat_gate(50.0).flags(dec, STANDUP, "skip it")  # two: never


def test_fit_gate_defaults_rows_without_prompts_and_needs_both_kinds():
    """``fit_gate`` reads ``unreadable`` as action 3 by default, takes rows with no ``prompt``
    attribute, fits with a single unreadable row, and refuses rows of one kind."""
    from collections import namedtuple

    from llm_bridge.decode import UNREADABLE, get_decoder
    from llm_bridge.gate import fit_gate

    dec = get_decoder()
    Row = namedtuple("Row", "event action text")  # no prompt attribute
    legible = [
        Row(STANDUP, 0, "I won't attend tonight, I'll post async notes."),
        Row(STANDUP, 1, "Sure, I'll join the standup at 10:30."),
        Row(STANDUP, 2, "Rahul will cover the standup for me."),
        Row(1, 0, "I'll reply async tomorrow morning."),
    ]
    garbled = Row(STANDUP, UNREADABLE, "the the standup standup notes notes the the of of")
    gate = fit_gate(dec, legible + [garbled])
    assert gate.probability(dec, STANDUP, garbled.text) > gate.probability(
        dec, STANDUP, legible[0].text
    )
    for rows in (legible, [garbled, garbled]):
        with pytest.raises(
            ValueError, match=r"^the gate needs replies of both kinds \(legible and unreadable\)$"
        ):
            fit_gate(dec, rows)


def test_an_event_without_training_replies_is_read_from_its_cue_priors():
    """``HybridDecoder.fit`` keeps, for an event with no labelled replies, the cue priors alone:
    each cue of action ``a`` found in a reply adds ``PRIOR`` to ``a`` (a negated one subtracts
    it), and the events after it are still trained.  Such a decoder, with no gate, decodes."""
    from llm_bridge.cues import PRIOR
    from llm_bridge.decode import TRAIN_FILE, HybridDecoder, feature_keys, load_labelled
    from llm_bridge.textnorm import normalize
    from wlf_jax.events import EVENT_IDS

    standup = EVENT_IDS.index("E7_standup")
    rows = [r for r in load_labelled(TRAIN_FILE) if r.event != standup]
    dec = HybridDecoder().fit(rows)
    assert dec.gate is None
    for text in ("I will attend the standup tonight.", "I won't attend; async notes instead.",
                 "Rahul can take the late standup for me.", "ok"):  # fmt: skip
        keys = set(feature_keys(EVENT_IDS[standup], normalize(text)))
        z = np.zeros(3)
        for a in range(3):
            z[a] += PRIOR * (f"q:{a}" in keys) - PRIOR * (f"q~:{a}" in keys)
        want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(dec.predict_proba(standup, text), want, atol=1e-12)
        assert dec.decode(standup, text).action == int(np.argmax(want))
    # the events after the untrained one are trained: their weights moved off the priors
    later = EVENT_IDS.index("S1_staging_relapse")
    assert len(dec.vocab[later]) > 100 and np.abs(dec.bias[later]).max() > 1e-3


def test_the_token_cache_keeps_known_words_only():
    """The decoder caches a token's feature columns only when the token is a word of the
    event's vocabulary (a stream of unseen words must not grow it), and what it caches is what
    it would compute."""
    from llm_bridge.decode import _token_keys, get_decoder
    from llm_bridge.textnorm import normalize

    dec = get_decoder()
    e = STANDUP
    dec._indices(e, normalize("zzqxv will cover the standup"))
    cache, vocab = dec._token_cache[e], dec.vocab[e]
    assert ("zzqxv", False) not in cache
    for tok in ("cover", "standup"):
        assert f"w:{tok}" in vocab
        assert cache[(tok, False)] == tuple(vocab[k] for k in _token_keys(tok, False) if k in vocab)


# -- the unreadable rules at their thresholds (E7: options of 6, 3 and 4 content words) ---------


def test_echo_of_two_option_lines_each_at_its_threshold():
    """Two lines that each hold just enough of one option's content words (4 of 6; 2 of 3, with
    exactly two content words on the line) are an echo; one such line is not; a header line of
    one word before them is skipped, not the end of the search."""
    from llm_bridge.unreadable import echo_kind, words

    def echo(text):
        return echo_kind(STANDUP, text, words(text))

    assert echo("Options:\ndecline send written async\nlate standup")
    assert not echo("Options:\nlate standup\nsomething else entirely")
    assert not echo("Options:\ndecline send written async\nlate")  # one content word: skipped
    # the same words, but no line holds enough of either option: read line by line
    assert not echo("decline send standup\nwritten async late")


def test_echo_of_status_lines_and_of_copied_runs_at_their_thresholds():
    from llm_bridge.unreadable import echo_kind, words
    from wlf_jax.events import EVENTS

    def echo(text, prompt=None):
        return echo_kind(STANDUP, text, words(text), prompt)

    assert echo("Energy: 0.4. Sprint health: 0.8.")  # two status lines
    assert not echo("Energy: 0.4. Fine by me.")
    # 8 words of the event's message then 6 others: 4 of 10 word 5-grams copied, exactly 0.4
    body = words(EVENTS[STANDUP].body)
    assert echo(" ".join(body[:8] + "alpha bravo charlie delta echo foxtrot".split()))
    assert not echo(" ".join(body[:8] + "alpha bravo charlie delta echo foxtrot golf".split()))
    # the last seven words of the prompt: its last three 5-grams
    prompt = "Reply to this note about the quarterly offsite planning committee agenda draft"
    assert echo("the quarterly offsite planning committee agenda draft", prompt)
    assert not echo("the quarterly offsite planning committee agenda draft")


def test_unreadable_reason_at_the_length_and_repetition_limits():
    from llm_bridge.unreadable import MAX_REPLY_CHARS, unreadable_reason

    long = ("We will post async notes. " * 160)[: MAX_REPLY_CHARS - 1] + "!"
    assert len(long) == MAX_REPLY_CHARS and unreadable_reason(STANDUP, long) != "too_long"
    assert unreadable_reason(STANDUP, long + "!") == "too_long"
    # 13 words, a period of 5: 5 distinct word 4-grams of 10, a share of exactly 0.5
    loop = "one two three four five one two three four five one two three"
    assert unreadable_reason(STANDUP, loop) == "repetition"
    assert unreadable_reason(STANDUP, " ".join(loop.split()[:11])) is None
    assert unreadable_reason(STANDUP, "<|im_start|>assistant\n<|im_end|>") == "empty"
    said = "I will attend the standup."
    assert unreadable_reason(STANDUP, said) is None
    assert unreadable_reason(STANDUP, said, contradictory=True) == "contradictory"


def test_legible_breaks_ties_to_the_lowest_action():
    """The classifier's reading with equal scores is the lowest tied action (as ``argmax``)."""
    from llm_bridge.decode import HybridDecoder

    dec = HybridDecoder().fit([])  # no replies: scores are the biases for an unknown word
    for bias, want in (((0, 0, 0), 0), ((-1, 0, 0), 1), ((1, 1, 0), 0), ((0, 1, 1), 1),
                       ((0, 0, 1), 2), ((0, -1, 0), 0)):  # fmt: skip
        dec.bias[STANDUP] = np.array(bias, float)
        d = dec.legible(STANDUP, "zzqxv")
        assert d.action == want, bias
        assert d.probs == pytest.approx(np.exp(bias) / np.exp(bias).sum(), abs=1e-12)


def test_event_idx_and_load_labelled_name_what_is_wrong(tmp_path):
    """Event ids and indices, and each malformed line of a labelled file, fail with a message
    naming the file, the line and the cause; blank lines are skipped, not the end of the file."""
    from llm_bridge.decode import UNREADABLE, event_idx, load_labelled

    assert event_idx("E7_standup") == event_idx(6) == 6 and event_idx(12) == 12
    with pytest.raises(KeyError, match=r"event index 13 out of range 0\.\.12"):
        event_idx(13)
    with pytest.raises(KeyError, match=r"unknown event 'E9'; known: E1_staging, E2_slack, "):
        event_idx("E9")

    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"event": "E7_standup", "action": "attend_sacrifice", "text": "I\'ll be there"}\n'
        "\n"
        '{"event": 6, "action": 2, "text": "Rahul will go", "prompt": "p"}\n'
        '{"event": 6, "action": "0", "text": "no"}\n'
        '{"event": 6, "action": "unreadable", "text": "la la"}\n'
    )
    rows = load_labelled(good)
    assert [(r.event, r.action, r.text, r.prompt) for r in rows] == [
        (6, 1, "I'll be there", None), (6, 2, "Rahul will go", "p"), (6, 0, "no", None),
        (6, UNREADABLE, "la la", None),
    ]  # fmt: skip
    bad = {
        '{"event": 6, "action": 4, "text": "x"}': r"action 4 out of range",
        '{"event": 6, "action": 0, "text": 3}': r"text is not a string",
        '{"event": 6, "action": 0, "text": "x", "prompt": 3}': r"prompt is not a string",
        '{"event": 6, "action": "dance", "text": "x"}': r"unknown action 'dance' for E7_standup; known: decline_async",
    }
    for line, why in bad.items():
        f = tmp_path / "bad.jsonl"
        f.write_text('{"event": 6, "action": 0, "text": "fine"}\n\n' + line + "\n")
        with pytest.raises(ValueError, match=rf"bad\.jsonl:3: bad labelled line \({why}"):
            load_labelled(f)
    with pytest.raises(FileNotFoundError, match=r"cannot read .*missing\.jsonl"):
        load_labelled(tmp_path / "missing.jsonl")


def test_token_at_finds_the_token_under_every_offset():
    from llm_bridge.decode import _token_at
    from llm_bridge.textnorm import normalize

    for text in ("I will not attend", "ok", "Decline, send async notes; attend? no."):
        n = normalize(text)
        for pos in range(len(n.plain)):
            want = max(i for i, s in enumerate(n.starts) if s <= pos)
            assert _token_at(n.starts, pos) == want, (text, pos)


def test_strip_preamble_removes_one_preamble_and_a_pair_of_quotes():
    from llm_bridge.textnorm import strip_preamble

    assert strip_preamble("Reply: Message: I'll go") == "Message: I'll go"
    assert strip_preamble('  Here is my reply: "I will go"  ') == "I will go"
    assert strip_preamble('""') == ""
    assert strip_preamble('"') == '"'


def test_every_command_has_help_that_renders_as_written():
    """`wlf COMMAND --help` for every command: a description, and no escaped percent sign
    left in it (argparse formats option help with %, but not a description, so a "%%" there
    would reach the user as written)."""
    import argparse

    from experiments.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 10
    for name, command in sub.choices.items():
        text = command.format_help()
        assert command.description, name
        assert "%%" not in text and "%(" not in text, (name, text)


def test_cpu_threads_take_the_request_then_omp_num_threads_then_every_core(monkeypatch):
    import os

    from llm_bridge.writers import available_cores, cpu_threads

    cores = len(os.sched_getaffinity(0))
    assert available_cores() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(5) == 5 and cpu_threads(None) == 3
    for unset in ("", "zero", "0"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert cpu_threads() == cores
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads() == cores
