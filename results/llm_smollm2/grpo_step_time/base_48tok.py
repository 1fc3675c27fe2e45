import sys, json
import llm_bridge.grpo.trainer as T
if sys.argv[1] == "off":
    T.score_completion_tokens_only = lambda: False
from experiments.cli.main import main
sys.argv = ["wlf", "grpo", "--model", "smollm2-135m", "--steps", "5", "--out", f"/tmp/gstep_{sys.argv[1]}", "--save-steps", "100", "--seed", "0"]
try:
    main()
except SystemExit:
    pass
log = json.load(open(f"/tmp/gstep_{sys.argv[1]}/trainer_log.json"))
print(sys.argv[1], "step_time", [round(r["step_time"], 2) for r in log if "step_time" in r])
