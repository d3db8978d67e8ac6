# Two commands on a fresh machine: `make demo`, then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MobileStyleGAN weights for `faceattr data synth`; the package's own dependencies
# (jupyter, gdown, opencv-python) are not needed, so it is installed without them.
RANDOM_FACE := random-face==2021.7.21.1

.PHONY: venv demo test bench clean

$(BIN)/faceattr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(RANDOM_FACE)
	touch $@

venv: $(BIN)/faceattr

demo: venv
	$(BIN)/faceattr demo

test: venv
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info
