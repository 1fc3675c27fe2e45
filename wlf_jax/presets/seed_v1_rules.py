"""The ``seed_v1`` rule book: the original week, reproduced exactly (SPEC §3.2)."""

from __future__ import annotations

from ..events import EVENTS
from ..params import MAX_STEPS, EnvParams
from .rows import Outcome, Row, build, schedule

_SEED_RUBRIC = {
    "rubric_weights": [0.25, 0.25, 0.20, 0.20, 0.10],
    "tech_weights": [0.5, 0.5],
    "tech_sprint_threshold": 70,
    "energy_thresholds": [70, 50, 30],
    "energy_scores": [1.0, 0.65, 0.30, 0.0],
    # (mean of the five trusts + 1.5 * david_chen) / 2.5
    "relationship_weights": [0.2 / 2.5 + 1.5 / 2.5, 0.08, 0.08, 0.08, 0.08],
}


def _seed_rows() -> list[Row]:
    O, R = Outcome, Row  # noqa: E741 - the short names of every rule-book module
    held, leaked = 25, -15  # boundary_setting = held/4 - 0.15 * leaked
    q = 0.35
    return [
        R("E1_staging", "fix_directly", O(-8, 20, status={"staging": "fixed"}), q),
        R("E1_staging", "delegate_oncall", O(-2, 10, {"rahul": -1}), q),
        R("E1_staging", "escalate_infra", O(-6, 5, {"rahul": -2}), q),
        R("E2_slack", "async_boundary", O(4, 0, {"priya": 1, "rahul": 1}), q, held),
        R("E2_slack", "both_calls_now", O(-20, -3, {"priya": 3, "rahul": 3}), q, leaked),
        R("E2_slack", "ignore_slack", O(-3, -2, {"priya": -4, "rahul": -4}), q),
        R("E3_client_email", "acknowledge_timeline", O(3, 0, {"david_chen": 8}), q, held),
        R("E3_client_email", "full_apology", O(-9, -5, {"david_chen": -4}), q),
        R("E3_client_email", "cc_manager", O(-2, 0, {"david_chen": 2, "sundar": -2}), q),
        # Approved when the uniform draw is > 0.20; the alternative (draw below 0.20) leaves
        # the leave pending.
        R(
            "E4_leave",
            "ping_sundar",
            O(10, 0, status={"leave": "approved"}),
            q,
            alt_prob=0.20,
            alt=O(status={"leave": "pending"}),
        ),
        R("E4_leave", "wait_hope", O(-12, 0), q),
        R("E4_leave", "cancel_leave", O(-25, 5, {"sundar": 1}, {"leave": "cancelled"}), q),
        R("E5_appraisal", "block_wednesday", O(3, 0, status={"appraisal": "done"}), q),
        R("E5_appraisal", "rush_tonight", O(-14, 0), q),
        R("E5_appraisal", "ask_extension", O(-3, 0), q),
        R("E6_oncall", "no_clearly_kindly", O(12, 0, {"arjun": -2}), q, held),
        R(
            "E6_oncall",
            "yes_people_pleaser",
            O(-28, -15, {"arjun": 5}, {"oncall": "accepted"}),
            q,
            leaked,
        ),
        R("E6_oncall", "counter_offer", O(2, 0), q, held),
        R("E7_standup", "decline_async", O(14, 0, {"david_chen": 2}), q, held),
        R("E7_standup", "attend_sacrifice", O(-30, -10, {"david_chen": 3}), q, leaked),
        R("E7_standup", "delegate_teammate", O(5, 0, {"priya": -2}), q),
    ]


def params() -> EnvParams:
    """The original hackathon rule book, reproduced exactly (SPEC §3.2)."""
    base = [e.id for e in EVENTS if not e.spawned]
    return build(
        "seed_v1",
        _seed_rows(),
        start_energy=87,
        start_sprint=80,
        start_trust=[75, 80, 90, 88, 82],
        start_status=[0, 0, 0, 0, 0],
        **schedule([(ev, 0) for ev in base], shuffle=set(base[1:])),
        day_by_count=True,
        count_day=[min(4, k // 2) for k in range(MAX_STEPS + 1)],
        recovery=[0, 0, 0, 0],
        sleep_debt_penalty=0,
        early_end_energy=5,
        float64_arithmetic=True,
        shaped_reward=False,
        reward_coef=[0.5, 0.3, 0.1, 0.12],
        bonus_thresholds=[70, 60, 30, 70],
        bonus_values=[1.0, 0.3, 0.3, 0.2, 0.3, -0.5, 0.2, 0.15],
        **_SEED_RUBRIC,
    )
