"""Throughput of the week against plain Python and against gymnax's own environments, one run.

Two harnesses, both ``jit(vmap(scan))`` with the batch sharded across the host's devices (``wlf
bench`` starts JAX with one CPU device per core; the ``by_batch`` rows also time the fastest
form on one device, which often wins on a 2-core CPU); rates are decisions per second, medians
of ``repeats`` timed runs after a compile run; compile time is reported apart.

* *weeks* (:func:`make_week_harness`, the ``forms`` and ``by_batch`` rows): random-policy weeks
  played to the end, chance and actions drawn once per week (one draw of 32-bit words, no key
  splits), only real decisions counted;
* *gymnax* (:func:`make_harness`, the ``peers`` rows): ``n_envs`` environments stepped with
  gymnax's auto-reset ``step``, a fresh key split per environment per step, uniformly random
  actions -- the loop of a gymnax trainer, the same for the week and for gymnax's own
  ``CartPole-v1`` and ``Catch-bsuite``.

Forms of the week:

* ``general`` -- :class:`~wlf_jax.WorkWeek` with the rule book passed as an argument: one program
  for every rule book (what sweeps ``vmap`` over);
* ``static`` -- the same environment with the rule book fixed when the program is built
  (Jumanji-style): XLA folds the tables and the switches between rule-book variants, so
  week_v2's program holds no seed_v1 work;
* ``compiled`` -- :class:`~wlf_jax.compiled.CompiledWeek`: every reachable state an id, a step
  one gather (fixed-order rule books only).

"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax import WorkWeek, presets
from wlf_jax.events import N_ACTIONS
from wlf_jax.params import EnvParams, to_python
from wlf_jax.reference import ReferenceWeek

PEERS: tuple[str, ...] = ("CartPole-v1", "Catch-bsuite")
FORMS: tuple[str, ...] = ("general", "static", "compiled")

_env = WorkWeek()


def env_sharding(n_envs: int, n_devices: int | None = None):
    """A sharding of a leading axis of ``n_envs`` over the first ``n_devices`` devices (default
    every device; replicated when the devices do not divide it)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = np.asarray(jax.devices()[: n_devices or jax.device_count()])
    mesh = Mesh(devices, ("env",))
    spec = PartitionSpec("env") if n_envs % len(devices) == 0 else PartitionSpec()
    return NamedSharding(mesh, spec)


def make_harness(env, env_params, n_envs: int, n_steps: int, static: bool = False):
    """A jitted ``run(keys (n_envs,)) -> return per env (n_envs,)``: ``n_steps`` auto-reset steps
    of ``n_envs`` environments with random actions and a key split per environment per step.

    ``static`` builds the program for this ``env_params`` only (closed over as constants)."""
    n_actions = env.num_actions

    def run(keys, params):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(carry, _):
            keys, state, total = carry
            split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
            keys, k_act, k_step = split[:, 0], split[:, 1], split[:, 2]
            actions = jax.vmap(lambda k: jax.random.randint(k, (), 0, n_actions))(k_act)
            _, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                k_step, state, actions, params
            )
            return (keys, state, total + reward), None

        init = (keys, state, jnp.zeros((n_envs,), jnp.float32))
        return jax.lax.scan(body, init, None, length=n_steps)[0][2]

    if static:
        return jax.jit(lambda keys: run(keys, env_params))
    fn = jax.jit(run)
    return lambda keys: fn(keys, env_params)


def _week_draw(key, n_uniforms: int):
    """A week's randomness in one draw of 32-bit words: ``MAX_STEPS`` random actions (a word
    modulo 3: bias 2**-32) and ``n_uniforms`` uniforms in [0, 1) (23 bits, the conversion
    ``jax.random.uniform`` makes).  One threefry call per two words, no key splits."""
    from wlf_jax.params import MAX_STEPS

    bits = jax.random.bits(key, (MAX_STEPS + n_uniforms,), jnp.uint32)
    actions = (bits[:MAX_STEPS] % N_ACTIONS).astype(jnp.int32)
    one = jnp.uint32(0x3F800000)  # 1.0f: 23 random mantissa bits make a float in [1, 2)
    unit = jax.lax.bitcast_convert_type((bits[MAX_STEPS:] >> 9) | one, jnp.float32) - 1.0
    return actions, unit


def make_week_harness(form: str, env, env_params, n_weeks: int):
    """A jitted ``run(keys (n_weeks,)) -> decisions made (n_weeks,)``: each week gets its chance
    and its ``MAX_STEPS`` random actions from its key, then plays them to the end."""
    from wlf_jax.params import MAX_STEPS

    if form == "compiled":
        from wlf_jax.compiled import CompiledState

        def play(key, rules):
            # An outcome uniform per step: each event is decided at most once in a week, so this
            # has the law of one uniform per event drawn at Monday (CompiledState).
            actions, uniforms = _week_draw(key, MAX_STEPS)

            def body(carry, x):
                state, done, count = carry
                _, nxt, _, now_done, _ = env.step_with_uniform(state, *x, rules)
                return (nxt, now_done, count + ~done), None

            init = (CompiledState(id=rules.initial), jnp.bool_(False), jnp.int32(0))
            return jax.lax.scan(body, init, (actions, uniforms))[0][2]

        fn = jax.jit(jax.vmap(play, in_axes=(0, None)))
        return lambda keys: fn(keys, env_params)

    from wlf_jax.rollout import replay_scenario
    from wlf_jax.state import sample_scenario

    def play_general(key, params):
        k_chance, k_act = jax.random.split(key)
        actions, _ = _week_draw(k_act, 0)
        final, _ = replay_scenario(
            sample_scenario(k_chance, params), params, choose=lambda s, a: a, xs=actions
        )
        return final.count

    if form == "static":
        return jax.jit(jax.vmap(lambda k: play_general(k, env_params)))
    fn = jax.jit(jax.vmap(play_general, in_axes=(0, None)))
    return lambda keys: fn(keys, env_params)


def time_harness(
    run: Callable,
    n_envs: int,
    n_steps: int | None,
    repeats: int = 5,
    seed: int = 0,
    n_devices: int | None = None,
) -> dict[str, float]:
    """Median steps/s of ``repeats`` timed runs of a harness, after one compile run, with the
    batch sharded over the first ``n_devices`` devices (default all).  With ``n_steps=None`` a
    run returns the decisions it made (the weeks harness)."""
    sharding = env_sharding(n_envs, n_devices)

    def keys(i):
        return jax.device_put(jax.random.split(jax.random.key(seed + i), n_envs), sharding)

    first = keys(0)
    t0 = time.perf_counter()
    jax.block_until_ready(run(first))
    compile_s = time.perf_counter() - t0
    rates = []
    for i in range(repeats):
        k = jax.block_until_ready(keys(i + 1))
        t0 = time.perf_counter()
        out = jax.block_until_ready(run(k))
        elapsed = time.perf_counter() - t0
        steps = n_envs * n_steps if n_steps is not None else int(np.sum(np.asarray(out)))
        rates.append(steps / elapsed)
    return {"steps_per_s": float(np.median(rates)), "compile_s": compile_s, "rates": rates}


def week_form(form: str, params: EnvParams):
    """``(env, env_params, static)`` of one form of the week; raises ``ValueError`` for a form
    the rule book does not have (``compiled`` needs a fixed event order).  The compiled tables
    are read from the on-disk cache when an earlier command built them (``load_or_compile``;
    building week_v2's takes about 10 s)."""
    if form == "general":
        return _env, params, False
    if form == "static":
        return _env, params, True
    if form == "compiled":
        from wlf_jax.compiled import CompiledWeek, UnsupportedRulesError, load_or_compile

        try:
            return CompiledWeek(params.name), load_or_compile(params), False
        except UnsupportedRulesError as e:
            raise ValueError(str(e)) from None
    raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")


def peer(name: str):
    """``(env, env_params)`` of a gymnax environment."""
    import gymnax

    return gymnax.make(name)


def state_bytes(params: EnvParams) -> int:
    """Bytes of one week's ``EnvState`` (all leaves)."""
    _, state = _env.reset(jax.random.key(0), params)
    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(state)))


def bench_python(params: EnvParams, seconds: float = 2.0, seed: int = 0) -> float:
    """Random-policy decisions/s of the plain-Python implementation (scenario drawing included)."""
    ref = ReferenceWeek(to_python(params))
    rules = ref.r
    rng = random.Random(seed)
    slots = list(rules["slot_event"])
    shuffled = [t for t, s in enumerate(rules["slot_shuffle"]) if s]
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        order = slots[:]
        moved = [order[t] for t in shuffled]
        rng.shuffle(moved)
        for t, e in zip(shuffled, moved):
            order[t] = e
        w = ref.reset(order, [rng.random() for _ in range(ref.n_events)])
        while not w.done:
            w, _ = ref.step(w, rng.randrange(3))
            steps += 1
    return steps / (time.perf_counter() - t0)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def run_bench(
    preset: str = "week_v2",
    batches: tuple[int, ...] = (1_000, 10_000, 100_000),
    python_seconds: float = 2.0,
    progress: Callable[[str], Any] | None = None,
    n_envs: int = 10_000,
    n_steps: int = 100,
    repeats: int = 5,
    forms: tuple[str, ...] = FORMS,
    peers: tuple[str, ...] = PEERS,
) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-ready result.

    ``forms`` and ``peers`` run at ``n_envs`` environments; the fastest form then runs at each
    of ``batches`` (``by_batch``), sharded over every device and (on a multi-device host) on one
    device; a batch the devices do not divide gets the one-device row only."""
    params = presets.get(preset)
    say = progress or (lambda _msg: None)
    say("plain Python")
    py = bench_python(params, python_seconds)

    def weeks(form: str, n: int, n_devices: int | None = None) -> dict[str, float]:
        run = make_week_harness(form, *built[form][:2], n)
        return time_harness(run, n, None, repeats, n_devices=n_devices)

    def gymnax_loop(env, env_params, static: bool) -> dict[str, float]:
        run = make_harness(env, env_params, n_envs, n_steps, static=static)
        return time_harness(run, n_envs, n_steps, repeats)

    built: dict[str, tuple] = {}
    skipped: dict[str, str] = {}
    for form in forms:
        say(f"building the {form} form")
        try:
            built[form] = week_form(form, params)
        except ValueError as e:
            skipped[form] = str(e)
    form_rows = {}
    for form in built:
        say(f"weeks: {form} form")
        form_rows[form] = weeks(form, n_envs)
    fastest = max(form_rows, key=lambda f: form_rows[f]["steps_per_s"])
    loop_rows = {}
    for form in built:
        say(f"gymnax loop: {form} form")
        loop_rows[form] = gymnax_loop(*built[form])
    peer_rows = {}
    for name in peers:
        say(f"gymnax loop: {name}")
        peer_rows[name] = gymnax_loop(*peer(name), False)
    loop_best = max(loop_rows, key=lambda f: loop_rows[f]["steps_per_s"])
    week_rate = loop_rows[loop_best]["steps_per_s"]
    # The fastest form at each batch size, sharded over every device and, on a multi-device
    # host, on one device: on a 2-core CPU one device often wins (XLA's threads within one
    # device against one program per device).
    n_dev = jax.device_count()
    by_batch = []
    for b in batches:
        # a batch the devices do not divide would be replicated on each: no multi-device row
        for d in sorted({n_dev if b % n_dev == 0 else 1, 1}, reverse=True):
            say(f"weeks: {fastest} form, {b:,} in parallel, {d} device(s)")
            r = form_rows[fastest] if (b == n_envs and d == n_dev) else weeks(fastest, b, d)
            by_batch.append(
                {
                    "batch": b,
                    "devices": d,
                    "steps_per_s": r["steps_per_s"],
                    "ratio": r["steps_per_s"] / py,
                    "compile_s": r["compile_s"],
                }
            )
    best = max([form_rows[fastest]["steps_per_s"]] + [r["steps_per_s"] for r in by_batch])
    # the row that gave ``best``; the forms row (n_envs on every device) when no batch row did
    top = max(by_batch, key=lambda r: r["steps_per_s"], default=None)
    if top is None or top["steps_per_s"] < best:
        top = {"batch": n_envs, "devices": n_dev}
    return {
        "preset": preset,
        "device": str(jax.devices()[0].platform),
        "device_count": jax.device_count(),
        "devices": jax.device_count(),
        "harness": {
            "n_envs": n_envs,
            "n_steps": n_steps,
            "repeats": repeats,
            "statistic": "median",
            "weeks": "random-policy weeks to the end, chance and actions drawn per week"
            " (one draw of 32-bit words per week)",
            "gymnax": "gymnax step (auto-reset), random actions, key split per env per step",
        },
        "jax_steps_per_s": best,
        "fastest_form": fastest,
        "python_steps_per_s": py,
        "ratio": best / py,
        "forms": {f: r["steps_per_s"] for f, r in form_rows.items()},
        "forms_compile_s": {f: r["compile_s"] for f, r in form_rows.items()},
        "forms_skipped": skipped,
        "forms_gymnax_loop": {f: r["steps_per_s"] for f, r in loop_rows.items()},
        "peers": {preset: week_rate, **{n: r["steps_per_s"] for n, r in peer_rows.items()}},
        "peer_form": loop_best,
        "peer_ratio": {n: week_rate / r["steps_per_s"] for n, r in peer_rows.items()},
        "versions": {"jax": jax.__version__, "gymnax": _version("gymnax")},
        "state_bytes": state_bytes(params),
        "compile_s": form_rows[fastest]["compile_s"],
        "best_batch": top["batch"],
        "best_devices": top["devices"],
        "by_batch": by_batch,
    }
