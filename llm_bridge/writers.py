"""Writers of free text for a week's decisions: a local Hugging Face causal LM
(:class:`HFWriter`), or a scripted persona (:class:`ScriptedWriter`, replies from
:data:`SCRIPTS`).  :func:`make_writer` builds either from CLI options; :mod:`.llm_policy` plays
weeks with them.  torch and transformers are imported only by :class:`HFWriter`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .prompts import render_chat

Messages = list[dict[str, str]]


class Writer:
    """Something that writes replies: ``write(descs, messages) -> list[str]`` for a batch of
    decisions (``descs`` are ``WorkWeek.describe`` dicts, ``messages`` the chat prompts)."""

    name = "writer"

    def write(self, descs: Sequence[Mapping[str, Any]], messages: Sequence[Messages]) -> list[str]:
        raise NotImplementedError


# Canned replies per persona and event (two phrasings each, picked at random per decision).
SCRIPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "people_pleaser": {
        "E1_staging": (
            "On it right away, I'll fix it myself, restarting everything now!",
            "So sorry everyone, ssh-ing in now and fixing it myself immediately.",
        ),
        "E2_slack": (
            "Sure sure, joining the huddle right now, both of you!",
            "Of course, calling you both now, dropping everything.",
        ),
        "E3_client_email": (
            "Hi David, I am so so sorry. This is unacceptable and entirely my fault. We will fix it as fast as possible, I promise.",
            "Hi David, deepest apologies for all the trouble. It will be fixed immediately, whatever it takes.",
        ),
        "E4_leave": (
            "I don't want to bother Sundar, I'll just wait and hope it gets approved.",
            "It's fine, I'll cancel the leave, the team needs me more.",
        ),
        "E5_appraisal": (
            "I'll just do it tonight after work, no problem.",
            "I'll stay up tonight and finish it, no need to block anything.",
        ),
        "E6_oncall": (
            "Sure, of course I'll cover Wednesday again, no worries at all!",
            "Yes, happy to take it, family comes first. Put me down.",
        ),
        "E7_standup": (
            "Hi David, of course I'll attend tonight, see you at 10:30!",
            "Accepted - I'll join the call tonight, no problem at all.",
        ),
        "S1_staging_relapse": (
            "So sorry, I'll take it over and fix it myself right now, all night if needed.",
            "My fault, taking over the fix myself immediately.",
        ),
        "S2_slack_followup": (
            "Sorry Sundar! I'll spend the whole afternoon on calls with them, whatever they need.",
            "Clearing my entire afternoon for calls with both of them.",
        ),
        "S3_client_reescalation": (
            "Hi David, I promise it will be fixed by tomorrow, guaranteed. So sorry again.",
            "Hi David, tomorrow for sure, you have my word. Deepest apologies.",
        ),
        "S4_leave_conflict": (
            "No problem Sundar, I'll give up the leave, the release comes first.",
            "Sure, cancel my leave, I'll be there Thursday.",
        ),
        "S5_night_incident": (
            "Up! Handling it alone, no need to wake anyone, I'll stay on till it's fixed.",
            "On it myself, won't page the secondary, I'll stay up.",
        ),
        "S6_thursday_exhaustion": (
            "Coffee and push through, I can't let the team down.",
            "I'll power through the full day, no break.",
        ),
    },
    "stonewaller": {
        "E1_staging": ("Escalating to infra. Ticket raised.", "Infra's box. Ticket filed."),
        "E2_slack": ("", "busy"),
        "E3_client_email": ("cc Sundar.", "Looping in Sundar."),
        "E4_leave": ("Not chasing anyone. Waiting.", "Will wait."),
        "E5_appraisal": ("Asking HR for an extension.", "Need an extension."),
        "E6_oncall": ("No.", "Can't. Ask someone else."),
        "E7_standup": ("Declined.", "Not attending. Will skip."),
        "S1_staging_relapse": ("Roll back. Defer the release.", "Rollback."),
        "S2_slack_followup": ("", "Not replying."),
        "S3_client_reescalation": ("Sundar, over to you.", "Handing this to Sundar."),
        "S4_leave_conflict": ("Moving it to next week.", "Next week then."),
        "S5_night_incident": ("Snooze.", "Snoozing till morning."),
        "S6_thursday_exhaustion": ("Rahul presents.", "Rahul, cover the review."),
    },
    "strategic": {
        "E1_staging": (
            "Ack - taking this myself: clearing /var/log/app on staging-api-01 per the runbook and restarting the service. ETA 20 min, I'll post in #releases when deploys are green.",
            "On it. Rotating the logs and restarting the api myself; I'll confirm here within 20 minutes.",
        ),
        "E2_slack": (
            "Heads down till 1 on the client issue. Priya: check the refresh TTL in the mobile config. Rahul: I'll comment on the spec PR by 2. Happy to do a call at 3 if anything's still open.",
            "Can't do calls right now, but drop your questions in the thread and I'll answer in writing by 2 - free for a quick call at 4 if needed.",
        ),
        "E3_client_email": (
            "Hi David,\n\nThanks for following up. We traced the slow loads to an unindexed query; the fix is in review and ships Thursday. I'll send you before/after numbers on Friday morning your time.\n\nBest,\nArjun",
            "Hi David, thank you for your patience. Realistic date: Thursday. I'll update you on Wednesday either way, with the cause and the test results.\n\nRegards,\nArjun",
        ),
        "E4_leave": (
            "Hi Sundar, my Thursday leave (LV-2291) has been pending for three months - could you approve it today? Priya has agreed to cover. Thanks!",
            "Hi Sundar, a quick one: could you approve my Thursday leave today? Handover notes are ready. Thank you!",
        ),
        "E5_appraisal": (
            "Blocking Wednesday 2-4 PM on my calendar for the self-appraisal, well before Friday.",
            "Booked a focus slot on Wednesday afternoon to write the appraisal properly.",
        ),
        "E6_oncall": (
            "Hey, I can't cover Wednesday this time - I've done the last two and need the night. Hope the family thing goes okay; maybe ask in the rota channel?",
            "Sorry, I have to say no this time, I'm running on empty after the last two. Hope everything's alright at home - Rahul or the rota group might be able to help.",
        ),
        "E7_standup": (
            "Hi David, thanks for the invite. I won't join the 10:30 PM call as it's late here, but I'll email a written update with the latency numbers by 9 PM IST.",
            "Hi David, I'll skip tonight's sync but you'll have my written notes on the latency numbers before it starts. Happy to take questions tomorrow.",
        ),
        "S1_staging_relapse": (
            "Rahul, let's pair on this for an hour at 2 - you drive, I'll walk you through the logrotate setup so we fix it for good together.",
            "Pairing with Rahul for an hour this afternoon to fix the rotation properly together.",
        ),
        "S2_slack_followup": (
            "Fair, Sundar - that's on me. I've booked 3 PM today with Priya and Rahul to unblock both.",
            "My miss, sorry. Invite sent for 2:30 today with both of them; I'll post notes after.",
        ),
        "S3_client_reescalation": (
            "Hi David, you're right, 'as fast as possible' wasn't a plan. Honest status: the fix is in staging; production Tuesday 9 AM ET, with numbers to you the same day. I'll update you daily until then.\n\nArjun",
            "Hi David, here is a realistic, dated plan: staging sign-off Friday, production Tuesday, report Wednesday. I'll confirm each step.\n\nArjun",
        ),
        "S4_leave_conflict": (
            "Hi Sundar, I'd like to keep Thursday. Handover: Priya runs the release checklist, Rahul owns rollback, and I'll walk them through it tomorrow.",
            "I'll keep the leave, with a proper handover - release steps documented and a walkthrough with Priya on Wednesday.",
        ),
        "S5_night_incident": (
            "Acked. Applying the runbook mitigation now, then handing over to Rahul as secondary with a summary.",
            "Mitigated with a pod restart; escalating to the secondary on-call to take it from here.",
        ),
        "S6_thursday_exhaustion": (
            "Hi Sundar, I was on the incident most of the night - I'll present my stories at 11 and then take the afternoon off to recover.",
            "I'll do the review, then take a half day to recover. Letting Sundar know.",
        ),
    },
}


class RecordingWriter(Writer):
    """Wraps a writer and counts every distinct reply it writes, per event: ``seen`` maps
    (event id, reply stripped of surrounding space) to how often it was written.  ``wlf eval-llm
    --replies-out`` writes them for a reader to label."""

    def __init__(self, inner: Writer):
        self.inner, self.name = inner, inner.name
        self.seen: dict[tuple[str, str], int] = {}

    def write(self, descs, messages) -> list[str]:
        """The inner writer's replies, unchanged; each one is counted."""
        texts = self.inner.write(descs, messages)
        for d, t in zip(descs, texts):
            key = (d["event"]["id"], (t or "").strip())
            self.seen[key] = self.seen.get(key, 0) + 1
        return texts

    def rows(self) -> list[dict[str, Any]]:
        """``{"i", "event", "text", "count"}`` per distinct reply, in event order, the most
        frequent reply of each event first."""
        from wlf_jax.events import EVENT_IDS

        order = {eid: n for n, eid in enumerate(EVENT_IDS)}
        items = sorted(self.seen.items(), key=lambda kv: (order[kv[0][0]], -kv[1], kv[0][1]))
        return [{"i": i, "event": e, "text": t, "count": n} for i, ((e, t), n) in enumerate(items)]

    def __getattr__(self, name):
        # only reached for attributes the wrapper lacks; never for its own or for dunders (so
        # copy and pickle do not recurse before ``inner`` exists)
        if name.startswith("__") or name in ("inner", "seen"):
            raise AttributeError(name)
        return getattr(self.inner, name)


class ScriptedWriter(Writer):
    """A persona with canned replies (``people_pleaser``, ``stonewaller``, ``strategic``).

    Shows the pipeline end to end without a model: its replies still go through the decoder
    and the judge like a model's.
    """

    def __init__(self, persona: str, seed: int = 0):
        if persona not in SCRIPTS:
            raise KeyError(f"unknown persona {persona!r}; known: {', '.join(SCRIPTS)}")
        self.persona = persona
        self.name = f"scripted:{persona}"
        self._rng = random.Random(seed)

    def write(self, descs, messages) -> list[str]:
        """One canned reply per decision."""
        return [self._rng.choice(SCRIPTS[self.persona][d["event"]["id"]]) for d in descs]


def cpu_threads(requested: int | None = None) -> int:
    """Threads for generation on the CPU: ``requested`` when given, else ``OMP_NUM_THREADS``
    when the environment sets it (e.g. one process of several sharing the cores), else every
    core this process may run on."""
    if requested:
        return int(requested)
    try:
        env = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        env = 0
    return env if env > 0 else available_cores()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16): there bf16 inference
    runs 3-4x faster than fp32 (SmolLM2-135M, 16 prompts of 288 tokens: prefill 2.2 s vs 7.3 s)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def inference_dtype(device: str, dtype: str = "auto"):
    """The torch dtype for generation: ``auto`` is bf16 on CUDA and on CPUs with native bf16
    (:func:`cpu_has_bf16`), else fp32; or ``float32`` / ``bfloat16`` by name."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") or cpu_has_bf16() else torch.float32
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"unknown dtype {dtype!r}; known: auto, float32, bfloat16")
    return getattr(torch, dtype)


class HFWriter(Writer):
    """A local Hugging Face causal LM (``local_files_only``: no download), batched generation.

    ``model_path`` is a folder, a ``.gguf`` file or a known name (``smollm2-135m``; see
    :mod:`llm_bridge.models`); ``adapter`` an optional LoRA adapter folder (peft) applied on
    top.  Prompts are rendered with the tokenizer's chat template and left-padded; ``compact``
    prompts (:func:`llm_bridge.prompts.compact_prompt`) are a quarter of the full ones.
    Sampling is seeded (``torch.manual_seed``) so a run is reproducible on the same machine.
    On CPU, torch uses ``num_threads`` threads (default: :func:`cpu_threads`, i.e.
    ``OMP_NUM_THREADS`` when set, else every core; JAX is idle while the model writes).
    """

    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.95,
        batch_size: int = 16,
        show_options: bool = True,
        seed: int = 0,
        num_threads: int | None = None,
        compact: bool = False,
        adapter: str | Path | None = None,
        dtype: str = "auto",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve_model

        path = resolve_model(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads(num_threads))
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.dtype = inference_dtype(self.device, dtype)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=self.dtype)
        if adapter:
            from peft import PeftModel

            if not Path(adapter).is_dir():
                raise FileNotFoundError(f"adapter folder not found: {adapter}")
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size
        self.show_options = show_options
        self.compact = compact
        self.name = "llm"
        self.model_path = str(model_path)
        self.adapter = str(adapter) if adapter else None
        torch.manual_seed(seed)

    def write(self, descs, messages) -> list[str]:
        """Generate one reply per prompt, ``batch_size`` prompts at a time (prompts sorted by
        length, so a batch pads little)."""
        import torch

        texts = [render_chat(self.tokenizer, m) for m in messages]
        out: list[str] = [""] * len(texts)
        limit = getattr(self.tokenizer, "model_max_length", 32768) or 32768
        max_prompt = max(16, min(limit, 1 << 20) - self.max_new_tokens)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_prompt,
                add_special_tokens=False,
            ).to(self.device)
            kwargs = dict(
                max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id
            )
            if self.temperature > 0:
                kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                gen = self.model.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, t in zip(idx, self.tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = t.strip()
        return out


def make_writer(
    policy: str = "llm", model: str | None = None, persona: str = "strategic", **kw
) -> Writer:
    """A writer from command-line style options: ``llm`` (needs ``model``) or ``scripted``."""
    if policy == "scripted":
        return ScriptedWriter(persona, seed=kw.get("seed", 0))
    if policy == "llm":
        if not model:
            raise ValueError(
                "--model is required with --policy llm (a folder, a .gguf file or smollm2-135m)"
            )
        return HFWriter(model, **kw)
    raise ValueError(f"unknown policy {policy!r}; known: llm, scripted")
