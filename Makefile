# Set-up and entry points. `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

# torch is pinned first: 2.13.0 is the CPU build available locally; anything else pulls CUDA.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[llm,serve,dev]"
	touch $@

demo: install
	$(BIN)/wlf demo

test: install
	$(BIN)/python -m pytest --durations=15

bench: install
	$(BIN)/wlf bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis wlf_out
