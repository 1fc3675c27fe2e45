"""GRPO against the simulator: reward, state rows, single- and multi-turn runs, resume, presets.

Offline: the tiny model is built locally and ``HF_HUB_OFFLINE=1`` is set; no weights download.
Runs use seed_v1 (solved in seconds) and short prompts so the module stays well under a minute
of training.
"""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from llm_bridge import grpo, rewards  # noqa: E402
from llm_bridge.consequence import get_solver  # noqa: E402
from wlf_jax.events import EVENT_IDS  # noqa: E402
from wlf_jax.reference import week_to_json  # noqa: E402

pytest.importorskip("trl")

PRESET = "seed_v1"

# Hand-written replies to the on-call request, one per action, each unmistakable.
ONCALL_REPLIES = {
    "no_clearly_kindly": "Hey, I can't cover Wednesday this time - I've done the last two and need the night. "
    "Hope the family thing goes okay; maybe ask in the rota channel?",
    "yes_people_pleaser": "Sure, of course I'll cover Wednesday again, no worries at all!",
    "counter_offer": "I can't do Wednesday, but I could swap: I'll take your Friday shift if you take my Monday.",
}


@pytest.fixture(scope="module", autouse=True)
def shared_solver():
    """Solve seed_v1 once for the session (tests/conftest.py): ``get_solver`` answers from the
    same process-wide solver."""
    from tests.conftest import solved

    solved(PRESET)
    yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from llm_bridge.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0))


@pytest.fixture(scope="module")
def rows():
    return grpo.prompt_rows(PRESET, 24, seed=3)


def _oncall_states():
    """Decision states at the on-call request, from the source policies' weeks."""
    e = EVENT_IDS.index("E6_oncall")
    return [w for _, w in grpo.visit_states(PRESET, 30, seed=5) if w.slot_event[w.slot] == e]


def test_reward_ranks_the_optimal_reply_above_a_harmful_one():
    from wlf_jax.events import ACTION_NAMES

    names = ACTION_NAMES[EVENT_IDS.index("E6_oncall")]
    checked = 0
    for w in _oncall_states()[:6]:
        qs = get_solver(PRESET).q(w)
        best, worst = max(range(3), key=lambda a: qs[a]), min(range(3), key=lambda a: qs[a])
        if qs[best] - qs[worst] < 1e-9:
            continue
        state = json.dumps(week_to_json(w))
        good, bad = ONCALL_REPLIES[names[best]], ONCALL_REPLIES[names[worst]]
        s_good, s_bad = (
            rewards.score_row(state, PRESET, good),
            rewards.score_row(state, PRESET, bad),
        )
        assert (s_good.action, s_bad.action) == (best, worst)  # the decoder reads them as meant
        assert s_good.q_norm == 1.0 and s_bad.q_norm == 0.0 and s_good.optimal and not s_bad.optimal
        r_good, r_bad = rewards.total_reward(None, [good, bad], [state, state], [PRESET, PRESET])
        assert r_good > r_bad + 0.5
        checked += 1
    assert checked >= 2


def test_reward_functions_follow_trl_conventions(rows):
    cfg = rewards.RewardConfig(judge_weight=0.3)
    funcs = rewards.reward_funcs(cfg)
    assert [f.__name__ for f in funcs] == ["q_value", "judge_quality", "format_penalty"]
    assert funcs == [rewards.q_value, rewards.judge_quality, rewards.format_penalty]  # importable
    assert rewards.reward_weights(cfg) == [1.0, 0.3, 1.0]
    other = rewards.reward_funcs(rewards.RewardConfig(max_chars=10))  # bound to its config
    assert [f.__name__ for f in other] == ["q_value", "judge_quality", "format_penalty"]
    r = rows[0]
    completions = [
        [{"role": "assistant", "content": "Sure, happy to help, I'll do it right away."}],
        [{"role": "assistant", "content": ""}],
    ]
    logged = {}
    cols = dict(
        state_json=[r["state_json"]] * 2,
        preset=[PRESET] * 2,
        event=[r["event"]] * 2,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    q, quality, pen = (f([r["prompt"]] * 2, completions, **cols) for f in funcs)
    assert all(0.0 <= x <= 1.0 for x in q + quality)
    assert pen[1] <= -1.0 and pen[0] == 0.0  # the empty reply is penalised
    assert set(logged) == {"optimal_rate", "decoder_confidence"}
    total = rewards.total_reward([r["prompt"]] * 2, completions, reward_config=cfg, **cols)
    assert total == pytest.approx([a + 0.3 * b + c for a, b, c in zip(q, quality, pen)])


def test_format_penalties():
    cfg = rewards.RewardConfig()
    assert rewards.format_penalties("E7_standup", "   ", cfg)["empty"] == cfg.empty_penalty
    assert (
        rewards.format_penalties("E7_standup", "Declining tonight, notes by 9. " * 40, cfg)[
            "over_length"
        ]
        > 0
    )
    mixed = "I'll attend the call tonight. I won't attend, I'll send notes instead. Rahul can go for me."
    assert (
        rewards.format_penalties("E7_standup", mixed, cfg)["unreadable"] == cfg.unreadable_penalty
    )
    # word salad that a decoder would still read an action into (what GRPO found without this)
    salad = "approve before numbers approve need both before a some pending before before before before up before"
    assert rewards.format_penalties("E4_leave", salad, cfg)["illegible"] > 0.5
    from llm_bridge.writers import SCRIPTS

    for event, replies in SCRIPTS["strategic"].items():
        for text in replies:
            assert sum(rewards.format_penalties(event, text, cfg).values()) == 0.0, (event, text)


def test_gate_penalty_charges_legible_replies_by_the_gates_doubt():
    from llm_bridge.decode import get_decoder

    off, on = rewards.RewardConfig(), rewards.RewardConfig(gate_weight=2.0)
    clear = "Sorry Arjun, I can't take Wednesday this time, I've covered the last two."
    doubtful = "Let me think about the rota thing, will see how it goes."
    assert "uncertain" not in rewards.format_penalties("E6_oncall", clear, off)  # off by default
    p_clear = rewards.gate_probability("E6_oncall", clear)
    p_doubt = rewards.gate_probability("E6_oncall", doubtful)
    dec = get_decoder()
    assert not dec.decode("E6_oncall", clear).unreadable
    assert not dec.decode("E6_oncall", doubtful).unreadable  # legible to the decoder, yet:
    assert 0.0 <= p_clear < 0.1 < p_doubt < dec.gate.threshold
    assert rewards.format_penalties("E6_oncall", clear, on)["uncertain"] == pytest.approx(
        2 * p_clear
    )
    assert rewards.format_penalties("E6_oncall", doubtful, on)["uncertain"] == pytest.approx(
        2 * p_doubt
    )
    # an unreadable reply pays its own penalty, not this one; a short one is never doubted
    mixed = "I'll attend the call tonight. I won't attend, I'll send notes instead. Rahul can go for me."
    assert dec.decode("E7_standup", mixed).unreadable
    assert rewards.format_penalties("E7_standup", mixed, on)["uncertain"] == 0.0
    # the penalty is one more term of the format penalty the reward subtracts
    extra = sum(rewards.format_penalties("E6_oncall", doubtful, on).values()) - sum(
        rewards.format_penalties("E6_oncall", doubtful, off).values()
    )
    assert extra == pytest.approx(2 * p_doubt)
    assert rewards.gate_probability("E6_oncall", "No, sorry.") == 0.0


def test_grpo_cli_passes_the_reward_to_the_stages_experiment(monkeypatch, tmp_path, capsys):
    import experiments.llm_stages as stages
    from experiments.cli import main

    seen = {}

    def fake_run_stages(**kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(stages, "run_stages", fake_run_stages)
    argv = ["grpo", "--experiment", "--model", "smollm2-135m", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*argv, "--gate-penalty", "0.5", "--judge-weight", "0.2"])
    assert seen["reward"] == rewards.RewardConfig(judge_weight=0.2, gate_weight=0.5)
    seen.clear()
    with pytest.raises(SystemExit):
        main(argv)
    assert "reward" not in seen  # the experiment's default reward
    assert main([*argv, "--gate-penalty", "-1"]) == 2
    assert main([*argv, "--gate-penalty", "nan"]) == 2
    assert "--gate-penalty must be a number >= 0" in capsys.readouterr().err
    # paths whose reward has no such term refuse it rather than ignore it
    assert main(["grpo", "--experiment", "--out", str(tmp_path), "--gate-penalty", "1"]) == 2
    assert main(["grpo", "--model", "x", "--multi-turn", "--gate-penalty", "1"]) == 2
    assert capsys.readouterr().err.count("applies to the single-turn reward") == 2


def _stage(score, unreadable, quality=0.7):
    return {"week_score": score, "week_score_ci": 0.02, "unreadable_rate": unreadable,
            "judged_quality": quality, "replies_per_s": 3.0, "replies": 500}  # fmt: skip


def test_a_reader_reading_joins_the_stages_table_and_figure(monkeypatch, tmp_path):
    """`wlf grpo --experiment --reader-reading GRPO=J` adds the weeks of `wlf eval-llm --labels
    --json J` beside the stages: in stages.json, the table and the figure's bars (between the
    stages and the structured agents); other weeks, or an output made without --labels, are
    refused."""
    import experiments.llm_stages as stages
    from experiments.cli import main

    res = {"model": "m", "preset": "week_v2", "seed": 0, "eval_weeks": 64,
           "stages": {"warm-up": _stage(0.563, 0.14), "GRPO": _stage(0.806, 0.0)},
           "structured": {"optimal": {"mean_score": 0.861}}}  # fmt: skip
    reader = {"labels": "l.jsonl", "labelled": 500, "unlabelled": 0} | _stage(0.62, 0.227, 0.56)
    ev = {"preset": "week_v2", "seed": 0, "weeks": 64, "agents": {"llm": reader}}
    (tmp_path / "reader.json").write_text(json.dumps(ev))
    monkeypatch.setattr(stages, "run_stages", lambda **kw: json.loads(json.dumps(res)))
    argv = ["grpo", "--experiment", "--model", "smollm2-135m", "--out", str(tmp_path)]
    assert main([*argv, "--reader-reading", f"GRPO={tmp_path / 'reader.json'}"]) == 0
    saved = json.loads((tmp_path / "stages.json").read_text())
    assert saved["read_by_labels"]["GRPO"]["week_score"] == 0.62
    assert saved["read_by_labels"]["GRPO"]["unlabelled"] == 0
    assert (tmp_path / "stages.png").stat().st_size > 0
    bars = stages.stage_bars(saved)
    assert [b[0] for b in bars] == [
        "warm-up (14% unreadable)",
        "GRPO (0% unreadable)",
        "GRPO, as a reader reads it (23% unreadable)",
        "optimal",
    ]
    assert [b[1] for b in bars] == [0.563, 0.806, 0.62, 0.861]
    row = next(x for x in stages.format_stages(saved).splitlines() if "GRPO, reader" in x)
    assert "0.620 ± 0.020" in row and "22.7%" in row and f"{0.62 / 0.861:.3f}" in row
    # refused: a stage that is not there, other weeks, an output without --labels, no '='
    for bad in ({"SFT": ev}, {"GRPO": ev | {"weeks": 8}},
                {"GRPO": ev | {"agents": {"llm": _stage(0.6, 0.1)}}}):  # fmt: skip
        with pytest.raises(ValueError):
            stages.add_reader_readings(json.loads(json.dumps(res)), bad)
    assert main([*argv, "--reader-reading", "GRPO"]) == 2
    assert (
        main(["grpo", "--model", "x", "--reader-reading", f"GRPO={tmp_path / 'reader.json'}"]) == 2
    )


def test_stages_refuse_a_grpo_stage_trained_with_another_reward(tmp_path):
    from experiments.llm_stages import _check_same_reward

    (tmp_path / "adapter").mkdir()
    res = {"grpo": {"config": {"reward": {"judge_weight": 0.3}}}}  # recorded before gate_weight
    _check_same_reward(res, tmp_path, None)  # the default reward: the same
    _check_same_reward(res, tmp_path, rewards.RewardConfig())
    with pytest.raises(ValueError, match=r"another reward \(gate_weight\)"):
        _check_same_reward(res, tmp_path, rewards.RewardConfig(gate_weight=1.0))
    _check_same_reward(
        res, tmp_path / "fresh", rewards.RewardConfig(gate_weight=1.0)
    )  # not started


def test_rows_carry_their_state_exactly(rows):
    visited = grpo.visit_states(PRESET, 6, seed=11)
    for source, w in visited[::3]:
        row = grpo.state_row(w, PRESET, source)
        back = grpo.restore_week(row["state_json"])
        assert back == w  # every field, floats included (seed_v1 keeps float64 quantities)
        assert grpo.week_messages(back, PRESET) == row["prompt"]
    ds = grpo.prompt_dataset(rows)  # through Arrow and back
    solver = get_solver(PRESET)
    for r, d in zip(rows, ds):
        assert d["state_json"] == r["state_json"] and d["preset"] == PRESET
        w = grpo.restore_week(d["state_json"])
        assert EVENT_IDS[w.slot_event[w.slot]] == d["event"] and not w.done
        assert solver.q(w) == solver.q(grpo.restore_week(r["state_json"]))


def test_rows_cover_early_late_healthy_and_exhausted_states():
    rows = grpo.prompt_rows(PRESET, 40, seed=0)
    days = {r["day"] for r in rows}
    energies = [r["energy"] for r in rows]
    assert min(days) == 0 and max(days) >= 3
    assert max(energies) >= 0.8 and min(energies) <= 0.3
    assert len({r["source"] for r in rows}) >= 3
    assert len({r["state_json"] for r in rows}) == len(rows)


def test_week_to_state_round_trips_and_prompts_describe_like_the_jax_state():
    """A plain-Python week goes through the one ``WorkWeek.describe`` (``week_to_state``): the
    conversion inverts ``week_from_state``, and the prompts' description equals the JAX one."""
    import jax

    from llm_bridge.grpo.data import week_description
    from wlf_jax import WorkWeek, presets
    from wlf_jax.convert import week_from_state, week_to_state

    env, params = WorkWeek(), presets.get("week_v2")
    _, state = env.reset(jax.random.key(4), params)
    for a in (0, 1, 2, 1):
        want = env.describe(state, params)
        w = week_from_state(state, params)
        converted = week_to_state(w, params)
        assert week_from_state(converted, params) == w
        for got in (env.describe(converted, params), week_description(w, "week_v2")):
            for k in ("day", "decisions", "event", "status", "pending", "history", "done"):
                assert got[k] == want[k], k
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        _, state, _, _, _ = env.step_env(None, state, a, params)


def test_week_to_state_keeps_float64_values_exactly():
    """seed_v1 keeps Python floats that drift off their decimals: the drift survives the
    conversion, and the prompts show each quantity rounded to hundredths, as before."""
    from llm_bridge.grpo.data import week_description
    from wlf_jax.convert import week_from_state, week_to_state

    params = get_solver(PRESET).params
    for _, w in grpo.visit_states(PRESET, 10, seed=7):
        back = week_from_state(week_to_state(w, params), params)
        assert (
            back.values == w.values
            and back._replace(
                values=w.values,
                energy_by_day=w.energy_by_day,
                quality_sum=w.quality_sum,
                uniforms=w.uniforms,
            )
            == w
        )
        assert back.quality_sum == pytest.approx(w.quality_sum, abs=1e-5)
        st = week_description(w, PRESET)["status"]
        assert st["energy"] == round(w.values[0], 2) and st["sprint_health"] == round(
            w.values[1], 2
        )
        assert list(st["trust"].values()) == [round(t, 2) for t in w.values[2:]]


def _run_cli(tiny, out, *extra):
    from experiments.cli import main

    args = [
        "grpo",
        "--model",
        tiny,
        "--preset",
        PRESET,
        "--out",
        str(out),
        "--prompts",
        "4",
        "--generations",
        "2",
        "--batch-size",
        "2",
        "--max-completion-length",
        "8",
        "--no-system",
        "--no-options",
        "--save-steps",
        "1",
        *extra,
    ]
    assert main(args) == 0


def test_single_turn_two_steps_then_resume(tiny, tmp_path):
    out = tmp_path / "run"
    _run_cli(tiny, out, "--steps", "2", "--json", str(tmp_path / "r.json"))
    res = json.loads((tmp_path / "r.json").read_text())
    for k in (
        "model",
        "steps",
        "wall_s",
        "reward_mean_first",
        "reward_mean_last",
        "reward_curve",
        "frac_reward_zero_std",
    ):
        assert k in res, k
    assert (
        res["steps"] == 2
        and len(res["reward_curve"]) == 2
        and len(res["frac_reward_zero_std"]) == 2
    )
    assert res["model"] == tiny and res["mode"] == "single-turn"
    for k in (
        "rewards/q_value/mean",
        "rewards/judge_quality/mean",
        "rewards/format_penalty/mean",
        "optimal_rate",
    ):
        assert len(res["components"][k]) == 2
    for f in (
        "model/config.json",
        "trainer_log.json",
        "reward_curves.json",
        "grpo_reward_curves.png",
        "checkpoints/checkpoint-2",
    ):
        assert (out / f).exists(), f
    # the run was "killed" after step 2: resume it to step 3
    _run_cli(tiny, out, "--steps", "3", "--resume", "--json", str(tmp_path / "r3.json"))
    res3 = json.loads((tmp_path / "r3.json").read_text())
    assert res3["steps"] == 3 and res3["resumed_from"].endswith("checkpoint-2")
    assert res3["steps_this_run"] == 1 and res["steps_this_run"] == 2
    log = json.loads((out / "trainer_log.json").read_text())
    assert [h["step"] for h in log if "reward" in h] == [1, 2, 3]


def test_multi_turn_two_steps(tiny, tmp_path):
    out = tmp_path / "mt"
    _run_cli(
        tiny, out, "--steps", "2", "--multi-turn", "--lora", "--json", str(tmp_path / "m.json")
    )
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["steps"] == 2 and res["mode"] == "multi-turn" and res["lora"]
    assert all(0.0 <= r <= 1.0 for r in res["reward_curve"])
    assert "week_optimal_rate" in res["components"]
    assert (out / "adapter" / "adapter_config.json").exists() and (
        out / "model" / "config.json"
    ).exists()


def test_multi_turn_masks_environment_tokens(tiny):
    model, tok = grpo.load_model(tiny)
    rows = grpo.week_rows(PRESET, 1, seed=2, show_options=False, include_system=False)
    week = grpo.restore_week(rows[0]["state_json"])
    played = grpo.play_weeks_with_model(
        model, tok, [week], PRESET, max_new_tokens=6, show_options=False, include_system=False
    )[0]
    assert len(played.completion_ids) == len(played.env_mask) and len(played.actions) >= 2
    env_text = tok.decode([t for t, m in zip(played.completion_ids, played.env_mask) if m == 0])
    model_ids = [t for t, m in zip(played.completion_ids, played.env_mask) if m == 1]
    assert (
        "It is" in env_text
        and "<|im_start|>user" in env_text
        and "<|im_start|>assistant" in env_text
    )
    assert "<|im_start|>" not in tok.decode(model_ids, skip_special_tokens=True)
    assert grpo.WEEK_KEY in rows[0]["prompt"][-1]
    assert 0.0 <= played.score <= 1.0


def test_config_presets(monkeypatch):
    cpu = grpo.grpo_config_kwargs(grpo.GRPORun(model="m", size="cpu-smoke"))
    assert (
        cpu["use_cpu"]
        and not cpu["bf16"]
        and not cpu["gradient_checkpointing"]
        and cpu["report_to"] == []
    )
    assert grpo.make_grpo_config(grpo.GRPORun(model="m", out="/tmp/wlf_cfg")).use_cpu
    # gpu-1.5b is not runnable here; build its config as a GPU machine would
    import transformers.training_args as ta

    monkeypatch.setattr(ta, "is_torch_bf16_gpu_available", lambda: True)
    run = grpo.GRPORun(
        model="Qwen2.5-1.5B-Instruct", size="gpu-1.5b", out="/tmp/wlf_cfg", wandb=True
    )
    cfg = grpo.make_grpo_config(run)
    assert (
        cfg.bf16 and cfg.gradient_checkpointing and not cfg.use_cpu and cfg.report_to == ["wandb"]
    )
    assert cfg.num_generations == 8 and cfg.use_vllm == grpo.vllm_available()
    assert run.resolved().lora and grpo.lora_config("gpu-1.5b").r == 16
    assert cfg.reward_weights == [1.0, 0.3, 1.0]


def test_evidence_experiment_runs_end_to_end_and_its_numbers_agree(tiny, tmp_path):
    """`wlf grpo --experiment` at toy size: warm-up, GRPO, before/after on held-out states."""
    from experiments.grpo_experiment import format_experiment, run_experiment

    res = run_experiment(
        out=tmp_path / "exp",
        model=tiny,
        preset=PRESET,
        n_train=8,
        n_eval=4,
        sft_steps=3,
        grpo_steps=2,
        samples=2,
        grpo_batch=8,
        progress=lambda *_: None,
    )
    saved = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert saved["grpo"]["steps"] == 2 and len(saved["grpo"]["reward_curve"]) == 2
    # the trainer ran with the experiment's settings: KL term logged (beta > 0), peak lr 1e-3
    log = json.loads((tmp_path / "exp" / "grpo" / "trainer_log.json").read_text())
    steps = [h for h in log if "reward" in h]
    assert all("kl" in h for h in steps)
    assert max(float(h["learning_rate"]) for h in steps) == pytest.approx(1e-3)
    assert res["n_eval"] == 4 and res["before"]["n"] == res["after"]["n"] == 8
    # the paired difference is the difference of the means (same states, same number of samples)
    d = res["difference"]
    assert d["reward"] == pytest.approx(
        res["after"]["mean_reward"] - res["before"]["mean_reward"], abs=1e-9
    )
    assert d["optimal_rate"] == pytest.approx(
        res["after"]["optimal_rate"] - res["before"]["optimal_rate"], abs=1e-9
    )
    # the scripted strategic writer is the best of the three on the same states
    w = res["scripted_writers"]
    assert w["strategic"]["mean_reward"] > max(
        w["people_pleaser"]["mean_reward"], w["stonewaller"]["mean_reward"]
    )
    assert (tmp_path / "exp" / "grpo" / "model" / "config.json").exists()
    assert "after - before" in format_experiment(res)


@pytest.mark.slow
def test_stages_experiment_runs_resumes_and_adds_grpo_seeds(tiny, tmp_path):
    """`wlf grpo --experiment --model NAME` at toy size with the tiny model: base, warm-up and
    GRPO each scored on full weeks; a rerun resumes without training again; a second GRPO seed
    from a copy of the warm-up is added with its gain over the warm-up."""
    import shutil

    from experiments.llm_stages import add_grpo_seeds, format_stages, run_stages

    kw = dict(
        model=tiny,
        preset=PRESET,
        eval_weeks=2,
        sft_steps=2,
        grpo_steps=1,
        n_train=8,
        label_states=1,
        label_temperatures=(1.0,),
        progress=lambda *_: None,
    )
    out = tmp_path / "stages"
    res = run_stages(out=out, **kw)
    assert list(res["stages"]) == ["base", "warm-up", "GRPO"]
    for s in res["stages"].values():
        assert s["weeks"] == 2 and 0.0 <= s["week_score"] <= 1.0
        assert 0.0 <= s["unreadable_rate"] <= 1.0
    assert (out / "warmup" / "adapter" / "adapter_config.json").is_file()
    assert (out / "grpo" / "adapter" / "adapter_config.json").is_file()
    labelled = (out / "replies_for_labelling.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["stage"] for r in labelled) == ["GRPO", "base", "warm-up"]
    again = run_stages(out=out, **kw)  # everything exists: nothing is trained or played again
    assert again["timing_s"] == res["timing_s"] and again["stages"] == res["stages"]
    assert (out / "replies_for_labelling.jsonl").read_text().splitlines() == labelled

    seed1 = tmp_path / "seed1"
    seed1.mkdir()
    shutil.copytree(out / "warmup", seed1 / "warmup")
    shutil.copy(out / "replies_for_labelling.jsonl", seed1)
    copy = {**res, "stages": {k: v for k, v in res["stages"].items() if k != "GRPO"}}
    (seed1 / "stages.json").write_text(json.dumps(copy))
    other = run_stages(out=seed1, grpo_seed=1, **kw)
    assert other["grpo_seed"] == 1 and other["stages"]["warm-up"] == res["stages"]["warm-up"]
    # the copied replies of seed 0's GRPO model are replaced by seed 1's own
    rows1 = [
        json.loads(r) for r in (seed1 / "replies_for_labelling.jsonl").read_text().splitlines()
    ]
    assert sorted(r["stage"] for r in rows1) == ["GRPO", "base", "warm-up"]
    merged = add_grpo_seeds(dict(res), [other])
    warm = res["stages"]["warm-up"]["week_score"]
    for seed, r in (("0", res), ("1", other)):
        g = merged["grpo_seeds"][seed]
        assert g["gain_over_warmup"] == pytest.approx(r["stages"]["GRPO"]["week_score"] - warm)
    assert "GRPO per seed" in format_stages(merged)
    foreign = {**other, "stages": {**other["stages"], "warm-up": {"week_score": -1.0}}}
    with pytest.raises(ValueError, match="share the warm-up"):
        add_grpo_seeds(dict(res), [foreign])
    with pytest.raises(ValueError, match="two runs with GRPO seed 1"):
        add_grpo_seeds(dict(res), [other, other])


def test_grpo_seed_gains_and_their_intervals():
    """The gain over the warm-up, its CI (the two CIs in quadrature) and whether it excludes
    zero, on numbers worked by hand: a clear gain, a gain inside its CI, a clear loss."""
    from experiments.llm_stages import add_grpo_seeds

    def run(seed, score, ci):
        stages = {
            "warm-up": {"week_score": 0.5, "week_score_ci": 0.03},
            "GRPO": {
                "week_score": score,
                "week_score_ci": ci,
                "unreadable_rate": 0.1,
                "judged_quality": 0.6,
                "replies_per_s": 2.0,
            },
        }
        return {"seed": 0, "grpo_seed": seed, "stages": stages}

    res = add_grpo_seeds(run(0, 0.6, 0.04), [run(1, 0.52, 0.04), run(2, 0.4, 0.04)])
    g = res["grpo_seeds"]
    assert g["0"]["gain_over_warmup"] == pytest.approx(0.1)
    assert g["0"]["gain_ci95"] == pytest.approx(0.05)  # sqrt(0.03^2 + 0.04^2)
    assert g["0"]["gain_excludes_zero"] and not g["1"]["gain_excludes_zero"]
    assert g["2"]["gain_over_warmup"] == pytest.approx(-0.1) and g["2"]["gain_excludes_zero"]


def test_completion_only_lm_head_gives_the_same_log_probs_and_gradients(
    tiny, tmp_path, monkeypatch
):
    """The CPU patch (score only the completion tokens in TRL's fused LM head) changes which
    positions go through the head (counted at the head itself), not their log-probs, entropies
    or the gradient of a loss on them; without it TRL scores every position.  The trainer
    applies it."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    from llm_bridge.grpo.trainer import GRPORun, make_grpo_trainer, score_completion_tokens_only

    model = AutoModelForCausalLM.from_pretrained(tiny, local_files_only=True, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    torch.manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding in the prompt
    mask[1, -2:] = 0  # a completion that ended early: padding inside the completion
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-5] = -100  # the last 5 tokens are the completion
    head_rows = []
    real_apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *rest):
        head_rows.append(hidden.shape[0])
        return real_apply(hidden, *rest)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)

    def run():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        (out.log_probs.sum() + 0.1 * out.entropy.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return out.log_probs.detach(), out.entropy.detach(), grads

    saved = trl_utils._use_triton
    try:
        trl_utils._use_triton = lambda device: False  # TRL's own CPU path: every position
        full = run()
        assert score_completion_tokens_only()
        assert score_completion_tokens_only()  # a second call keeps the one patch
        compact = run()
        trl_utils._use_triton = lambda device: False
        make_grpo_trainer(GRPORun(model=tiny, out=str(tmp_path / "run"), steps=1))
        assert trl_utils._use_triton(torch.device("cpu"))  # the trainer patched it
    finally:
        trl_utils._use_triton = saved
    valid = labels[:, 1:] != -100
    assert valid.sum() == 13
    assert head_rows == [3 * 11, 13]  # every shifted position, then the completion tokens only
    for a, b in zip(full[:2], compact[:2]):
        assert torch.allclose(a[valid], b[valid], atol=1e-5)
        assert (b[~valid] == 0).all()
    assert full[0][valid].abs().min() > 0  # real log-probs were compared
    assert len(full[2]) == len(compact[2]) > 0
    for a, b in zip(full[2], compact[2]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
