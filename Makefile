# Transcurrent: `make test` and `make demo` set everything up on a fresh Debian machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo lint system-deps realspeech-deps tts-voices lock clean

# Debian packages (as root: installed; otherwise a clear message saying what is missing).
system-deps:
	@bash tools/install_system_deps.sh

# The Debian packages with real recorded speech that `asr prepare realspeech` reads (~1.7 GB; not for the tests).
realspeech-deps:
	@bash tools/install_system_deps.sh --realspeech

# Kokoro's 28 English voices (asr synth --engines kokoro), from the npm registry's kokoro-js tarball (checked).
tts-voices: $(STAMP)
	@$(BIN)/python -m asr.synth.kokoro --install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U "pip>=24"

# Reinstall only when the project's dependency files change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: system-deps $(STAMP) tts-voices lint
	$(BIN)/python -m pytest -q

demo: system-deps $(STAMP)
	bash tools/demo.sh

# Regenerate the constraints file from the current venv (run after changing dependencies, then commit it).
lock: | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^transcurrent' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
