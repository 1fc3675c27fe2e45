"""Fixed agents: random, accept_all, decline_all, ignore_all, strategic, best_fixed_map, myopic.

Fixed maps are event -> action tables (one per catalogue event).  As JAX policies they read the
current event from the observation's ``event_onehot`` block, so they run inside ``rollout``.
The mappings, in words:

* ``accept_all`` — say yes to every ask and take every burden personally (fix it yourself, take
  both calls, apologise and promise, cancel the leave, rush the appraisal tonight, accept the
  on-call, attend the 10:30 PM call; handle every follow-up the hardest way).
* ``decline_all`` — push every ask away without owning it (escalate to infra, cc the manager,
  ask for an extension, hand things over, roll back, keep declining).
* ``ignore_all`` — the most passive option everywhere (ignore Slack, wait and hope, snooze the
  page, keep ignoring; where no reply is not an option, the least engaged one).
* ``strategic`` — the hand-written "obvious" map of SPEC §4 (fix staging, async boundary,
  acknowledge with a timeline, ping for the leave, block a slot, decline on-call kindly, decline
  the standup with an async update; sensible choices for the follow-ups).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax.env import OBS_LAYOUT
from wlf_jax.events import EVENT_IDS, N_EVENTS, action_index

_NAMED: dict[str, dict[str, str]] = {
    "accept_all": {
        "E1_staging": "fix_directly",
        "E2_slack": "both_calls_now",
        "E3_client_email": "full_apology",
        "E4_leave": "cancel_leave",
        "E5_appraisal": "rush_tonight",
        "E6_oncall": "yes_people_pleaser",
        "E7_standup": "attend_sacrifice",
        "S1_staging_relapse": "take_over_fix",
        "S2_slack_followup": "calls_all_day",
        "S3_client_reescalation": "promise_again",
        "S4_leave_conflict": "give_up_leave",
        "S5_night_incident": "handle_alone",
        "S6_thursday_exhaustion": "push_through",
    },
    "decline_all": {
        "E1_staging": "escalate_infra",
        "E2_slack": "async_boundary",
        "E3_client_email": "cc_manager",
        "E4_leave": "ping_sundar",
        "E5_appraisal": "ask_extension",
        "E6_oncall": "no_clearly_kindly",
        "E7_standup": "decline_async",
        "S1_staging_relapse": "roll_back_release",
        "S2_slack_followup": "own_and_schedule",
        "S3_client_reescalation": "hand_to_manager",
        "S4_leave_conflict": "hold_with_handover",
        "S5_night_incident": "wake_secondary",
        "S6_thursday_exhaustion": "take_half_day",
    },
    "ignore_all": {
        "E1_staging": "escalate_infra",
        "E2_slack": "ignore_slack",
        "E3_client_email": "cc_manager",
        "E4_leave": "wait_hope",
        "E5_appraisal": "ask_extension",
        "E6_oncall": "counter_offer",
        "E7_standup": "delegate_teammate",
        "S1_staging_relapse": "roll_back_release",
        "S2_slack_followup": "keep_ignoring",
        "S3_client_reescalation": "hand_to_manager",
        "S4_leave_conflict": "move_to_next_week",
        "S5_night_incident": "snooze_alert",
        "S6_thursday_exhaustion": "ask_cover",
    },
    "strategic": {
        "E1_staging": "fix_directly",
        "E2_slack": "async_boundary",
        "E3_client_email": "acknowledge_timeline",
        "E4_leave": "ping_sundar",
        "E5_appraisal": "block_wednesday",
        "E6_oncall": "no_clearly_kindly",
        "E7_standup": "decline_async",
        "S1_staging_relapse": "pair_with_rahul",
        "S2_slack_followup": "own_and_schedule",
        "S3_client_reescalation": "honest_plan",
        "S4_leave_conflict": "hold_with_handover",
        "S5_night_incident": "wake_secondary",
        "S6_thursday_exhaustion": "take_half_day",
    },
}

FIXED_MAP_NAMES: tuple[str, ...] = tuple(_NAMED)


def action_map(name: str) -> np.ndarray:
    """(E,) int32 event -> action index of a named fixed agent."""
    if name not in _NAMED:
        raise KeyError(f"unknown fixed agent {name!r}; known: {', '.join(_NAMED)}")
    table = _NAMED[name]
    return np.array([action_index(e, table[e]) for e in EVENT_IDS], np.int32)


def describe_map(amap) -> dict[str, str]:
    """{event id: action name} of an (E,) action map."""
    from wlf_jax.events import ACTION_NAMES

    return {EVENT_IDS[e]: ACTION_NAMES[e][int(amap[e])] for e in range(N_EVENTS)}


_EVENT_BLOCK = sum(n for name, n in OBS_LAYOUT[: [b for b, _ in OBS_LAYOUT].index("event_onehot")])


def current_event_from_obs(obs: jnp.ndarray) -> jnp.ndarray:
    """Index of the current event, read from the observation's one-hot block."""
    return jnp.argmax(obs[..., _EVENT_BLOCK : _EVENT_BLOCK + N_EVENTS], axis=-1)


def map_policy(amap, obs, key) -> jnp.ndarray:
    """JAX policy for a fixed map: ``policy_params`` is the (E,) action map."""
    del key
    return jnp.asarray(amap)[current_event_from_obs(obs)]


def random_policy(policy_params, obs, key) -> jnp.ndarray:
    """Uniform over the three actions."""
    del policy_params, obs
    return jax.random.randint(key, (), 0, 3)
