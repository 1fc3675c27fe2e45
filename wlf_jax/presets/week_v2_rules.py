"""The ``week_v2`` rule book: consequences that compound.

Every number here is listed with its reason in ``docs/rulebook.md`` (generated from these rows
by ``wlf rulebook``), so the table and the code cannot drift apart.
"""

from __future__ import annotations

from ..params import EnvParams
from .rows import Outcome as O
from .rows import Row as R
from .rows import build, schedule

START = {
    "start_energy": 75,
    "start_sprint": 68,
    # david_chen, sundar, priya, rahul, arjun
    "start_trust": [70, 78, 85, 85, 80],
    "start_status": [0, 0, 0, 0, 0],
}

SCHEDULE = [
    ("E1_staging", 0),
    ("E2_slack", 0),
    ("E3_client_email", 0),
    ("S1_staging_relapse", 1),
    ("S2_slack_followup", 1),
    ("E4_leave", 1),
    ("E5_appraisal", 1),
    ("S4_leave_conflict", 2),
    ("E6_oncall", 2),
    ("E7_standup", 2),
    ("S5_night_incident", 3),
    ("S6_thursday_exhaustion", 3),
    ("S3_client_reescalation", 3),
]

ROWS: list[R] = [
    # ---- Monday ------------------------------------------------------------------------------
    R(
        "E1_staging",
        "fix_directly",
        O(-14, 6, status={"staging": "fixed"}),
        0.75,
        reason="Costly but certain: an hour of focused debugging unblocks four engineers.",
    ),
    R(
        "E1_staging",
        "delegate_oncall",
        O(-3, 4, {"rahul": -2}, {"staging": "fixed"}),
        0.70,
        alt_prob=0.50,
        alt=O(spawn="S1_staging_relapse"),
        reason="Cheap now and it looks fixed tonight; the on-call engineer lacks context, so half "
        "of the time the fix does not hold and the outage relapses on Tuesday.",
    ),
    R(
        "E1_staging",
        "escalate_infra",
        O(-5, 2, {"rahul": -1}, {"staging": "fixed"}),
        0.55,
        boundary=-10,
        alt_prob=0.60,
        alt=O(spawn="S1_staging_relapse"),
        reason="Pushing an outage you own to a generic queue is neglect; most of the time the "
        "patch is a workaround that fails.",
    ),
    R(
        "E2_slack",
        "async_boundary",
        O(2, 0, {"priya": 1, "rahul": 1}),
        0.80,
        boundary=15,
        reason="Written answers plus a slot later: a warranted boundary that keeps peers unblocked.",
    ),
    R(
        "E2_slack",
        "both_calls_now",
        O(-12, 3, {"priya": 3, "rahul": 3}),
        0.55,
        boundary=-10,
        reason="Two context switches in a firefight morning: pleasant for peers, costly for Arjun.",
    ),
    R(
        "E2_slack",
        "ignore_slack",
        O(-5, -3, {"priya": -5, "rahul": -5}, spawn="S2_slack_followup"),
        0.0,
        boundary=-20,
        reason="Neglect, not a boundary: the pings keep nagging, the peers stay blocked and "
        "escalate to the manager.",
    ),
    R(
        "E3_client_email",
        "acknowledge_timeline",
        O(-3, 0, {"david_chen": 4}),
        0.80,
        boundary=10,
        alt_prob=0.50,
        alt=O(sprint=-8, trust={"david_chen": -6}),
        reason="Honest and dated; half the time David pushes for an earlier date and the "
        "team re-plans the sprint around it (chance).",
    ),
    R(
        "E3_client_email",
        "full_apology",
        O(-6, 0, {"david_chen": 8}),
        0.55,
        alt_prob=0.80,
        alt=O(spawn="S3_client_reescalation"),
        reason="Feels good on Monday; 'as fast as possible' is a promise the team usually cannot "
        "keep, and David re-escalates on Thursday.",
    ),
    R(
        "E3_client_email",
        "cc_manager",
        O(-2, 0, {"david_chen": -6, "sundar": -8}),
        0.40,
        boundary=-10,
        reason="Reads as passing the buck: the client feels deflected, the manager dragged in.",
    ),
    # ---- Tuesday -----------------------------------------------------------------------------
    R(
        "S1_staging_relapse",
        "take_over_fix",
        O(-18, 0, status={"staging": "fixed"}),
        0.70,
        reason="Fixing the root cause alone after a failed hand-off is the most draining option.",
    ),
    R(
        "S1_staging_relapse",
        "pair_with_rahul",
        O(-10, 0, {"rahul": 2}, {"staging": "fixed"}),
        0.75,
        alt_prob=0.30,
        alt=O(sprint=-8, status={"staging": "broken"}),
        reason="Pairing shares the load and teaches Rahul; sometimes the hour is not enough.",
    ),
    R(
        "S1_staging_relapse",
        "roll_back_release",
        O(-4, -14, {"david_chen": -6}, {"staging": "broken"}),
        0.50,
        boundary=-10,
        reason="Safe for Arjun, expensive for the sprint and visible to the client.",
    ),
    R(
        "S2_slack_followup",
        "own_and_schedule",
        O(-4, 2, {"sundar": -3, "priya": 2, "rahul": 2}),
        0.75,
        reason="Owning the miss repairs most of the damage; the manager still noticed.",
    ),
    R(
        "S2_slack_followup",
        "calls_all_day",
        O(-15, 3, {"sundar": 1, "priya": 3, "rahul": 3}),
        0.50,
        boundary=-10,
        reason="Over-correcting: an afternoon of calls to make up for the silence.",
    ),
    R(
        "S2_slack_followup",
        "keep_ignoring",
        O(-10, -12, {"sundar": -20, "priya": -10, "rahul": -10}),
        0.0,
        boundary=-25,
        reason="Neglect twice over: the team is blocked and the manager loses trust.",
    ),
    R(
        "E4_leave",
        "ping_sundar",
        O(10, 0, status={"leave": "approved"}),
        0.75,
        boundary=10,
        alt_prob=0.30,
        alt=O(energy=-18, status={"leave": "pending"}, spawn="S4_leave_conflict"),
        reason="Asking is a warranted boundary; usually approved (relief), 30% of the time "
        "Sundar notices the release clash instead.",
    ),
    R(
        "E4_leave",
        "wait_hope",
        O(-8, 0, spawn="S4_leave_conflict"),
        0.20,
        boundary=-10,
        reason="Avoidance costs sleep, and the request surfaces on Wednesday as a clash with the release.",
    ),
    R(
        "E4_leave",
        "cancel_leave",
        O(-15, 4, {"sundar": 1}, {"leave": "cancelled"}),
        0.50,
        boundary=-15,
        reason="Gives up a three-month-old need to avoid a conversation: people-pleasing.",
    ),
    R(
        "E5_appraisal",
        "block_wednesday",
        O(-3, 0, status={"appraisal": "done"}),
        0.80,
        boundary=10,
        reason="A protected slot: done in working hours.",
    ),
    R(
        "E5_appraisal",
        "rush_tonight",
        O(-10, 5, status={"appraisal": "done", "sleep_debt": "sleep_debt"}),
        0.50,
        boundary=-5,
        reason="Done at the cost of a late night (sleep debt), which keeps Wednesday free for sprint work.",
    ),
    R(
        "E5_appraisal",
        "ask_extension",
        O(6, 0, {"sundar": -6}, {"appraisal": "extended"}),
        0.60,
        reason="A weight off this week's shoulders, but the manager has to chase HR for it.",
    ),
    # ---- Wednesday ---------------------------------------------------------------------------
    R(
        "S4_leave_conflict",
        "hold_with_handover",
        O(-5, 0, {"sundar": -2}, {"leave": "approved"}),
        0.80,
        boundary=10,
        reason="Keeping the leave with a concrete handover is a boundary with an alternative.",
    ),
    R(
        "S4_leave_conflict",
        "give_up_leave",
        O(-12, 4, status={"leave": "cancelled"}),
        0.50,
        boundary=-10,
        reason="Gives up the leave under pressure; the sprint gains a day.",
    ),
    R(
        "S4_leave_conflict",
        "move_to_next_week",
        O(-3, 0, {"sundar": 2}),
        0.70,
        reason="A compromise: no rest this week, goodwill with the manager.",
    ),
    R(
        "E6_oncall",
        "no_clearly_kindly",
        O(3, 0, {"arjun": -5}),
        0.75,
        boundary=15,
        reason="A third ask, declined clearly and kindly: the warranted refusal the week is about.",
    ),
    R(
        "E6_oncall",
        "yes_people_pleaser",
        O(-4, 0, {"arjun": 8}, {"oncall": "accepted"}, spawn="S5_night_incident"),
        0.55,
        boundary=-10,
        reason="Looks cheap on Wednesday; the night brings an incident and Thursday pays for it.",
    ),
    R(
        "E6_oncall",
        "counter_offer",
        O(0, 0, {"arjun": -1}),
        0.80,
        boundary=15,
        alt_prob=0.40,
        alt=O(trust={"arjun": -5}),
        reason="A swap is a refusal with an alternative; sometimes the teammate resents it (chance).",
    ),
    R(
        "E7_standup",
        "decline_async",
        O(3, 0, {"david_chen": 1}),
        0.80,
        boundary=15,
        alt_prob=0.30,
        alt=O(trust={"david_chen": -5}),
        reason="Declining an optional 10:30 PM call with a written update; David is sometimes put out.",
    ),
    R(
        "E7_standup",
        "attend_sacrifice",
        O(-8, 5, {"david_chen": 6}, {"sleep_debt": "sleep_debt"}),
        0.60,
        boundary=-10,
        reason="Pleases the client and unblocks a sprint decision tonight; sleep debt "
        "wipes out Thursday's recovery.",
    ),
    R(
        "E7_standup",
        "delegate_teammate",
        O(0, 0, {"david_chen": -2, "priya": -5}),
        0.60,
        reason="Priya covers a call at 10:30 PM in Arjun's place.",
    ),
    # ---- Thursday ----------------------------------------------------------------------------
    R(
        "S5_night_incident",
        "handle_alone",
        O(-20, 5, spawn="S6_thursday_exhaustion"),
        0.60,
        boundary=-5,
        reason="Resolves the incident, costs the night's sleep.",
    ),
    R(
        "S5_night_incident",
        "wake_secondary",
        O(-8, 0, {"rahul": -3}),
        0.75,
        alt_prob=0.50,
        alt=O(energy=-8, spawn="S6_thursday_exhaustion"),
        reason="Mitigate and hand over; half the time the secondary does not pick up.",
    ),
    R(
        "S5_night_incident",
        "snooze_alert",
        O(-2, -15, {"david_chen": -8, "sundar": -8}),
        0.0,
        boundary=-20,
        reason="Neglect: the incident grows until the morning and the client notices.",
    ),
    R(
        "S6_thursday_exhaustion",
        "take_half_day",
        O(12, -8, {"sundar": -2}),
        0.75,
        boundary=10,
        reason="Recovering is warranted after a night incident; the sprint loses an afternoon.",
    ),
    R(
        "S6_thursday_exhaustion",
        "push_through",
        O(-10, 4),
        0.50,
        boundary=-10,
        reason="Coffee and willpower: the stories close, the tank empties.",
    ),
    R(
        "S6_thursday_exhaustion",
        "ask_cover",
        O(5, -2, {"rahul": -4}),
        0.70,
        boundary=5,
        reason="Rahul presents; some recovery, some cost to him.",
    ),
    R(
        "S3_client_reescalation",
        "honest_plan",
        O(-14, -10, {"david_chen": -12}),
        0.80,
        reason="Honesty repairs part of the damage of Monday's over-promise; the plan costs sprint time.",
    ),
    R(
        "S3_client_reescalation",
        "promise_again",
        O(-8, -12, {"david_chen": -14}),
        0.30,
        boundary=-15,
        reason="A second empty promise: a crunch for the team and the VP sees through it.",
    ),
    R(
        "S3_client_reescalation",
        "hand_to_manager",
        O(-2, -6, {"david_chen": -25, "sundar": -12}),
        0.45,
        boundary=-10,
        reason="Cheap for Arjun, costly for both relationships.",
    ),
]

SETTINGS = {
    "day_by_count": False,
    "count_day": [0] * 15,
    "recovery": [5, 5, 5, 5],
    "sleep_debt_penalty": 8,
    "early_end_energy": 5,
    "float64_arithmetic": False,
    "shaped_reward": True,
    "reward_coef": [0.0, 0.0, 0.0, 0.0],
    "bonus_thresholds": [0, 0, 0, 0],
    "bonus_values": [0.0] * 8,
    "rubric_weights": [0.25, 0.15, 0.20, 0.25, 0.15],
    "tech_weights": [0.5, 0.5],
    "tech_sprint_threshold": 70,
    "energy_thresholds": [70, 50, 30],
    "energy_scores": [1.0, 0.65, 0.30, 0.0],
    "relationship_weights": [0.68, 0.08, 0.08, 0.08, 0.08],
}


def params() -> EnvParams:
    """Build the week_v2 rule book."""
    return build("week_v2", ROWS, **START, **schedule(SCHEDULE), **SETTINGS)
