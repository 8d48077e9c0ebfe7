# make demo   explain scikit-image's photos with the ImageNet EfficientNet-Lite0 -> out/index.html
# make test   the whole test suite (what CI runs)
# Both build .venv on first use; later runs reuse it until pyproject.toml, constraints.txt or this file change.

PYTHON ?= python3
VENV ?= .venv
OUT ?= out
ARGS ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
BASE_STAMP := $(VENV)/.unmask-installed
TEST_STAMP := $(VENV)/.unmask-test-installed

.PHONY: demo test install install-test clean browser

demo: $(BASE_STAMP)
	$(VENV)/bin/unmask explain --out $(OUT) $(ARGS)

test: $(TEST_STAMP) browser
	$(PY) -m pytest $(ARGS)

# headless Chromium and its driver for the browser tests of unmask explore: installed with apt when missing
# and this is root (as in CI); elsewhere those tests skip and say why.
browser:
	@{ command -v chromedriver && command -v chromium; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "make: no chromium + chromium-driver (not root with apt-get, or apt-get failed): the browser tests of unmask explore will skip"; }

install: $(BASE_STAMP)
install-test: $(TEST_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and alone: the pinned CPU build, so nothing below can resolve a CUDA one.
$(BASE_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all]'
	touch $@

# The oracles zennit and quantus need torchvision on paper only (the tests stand in for it): installed
# without dependencies; the test extra brings what they import. timm (random-weight architectures for
# the LRP engine's tests) likewise, with the three packages it imports.
$(TEST_STAMP): $(BASE_STAMP) Makefile
	$(PIP) -e '.[all,test]'
	$(PIP) --no-deps zennit==0.5.1 quantus==0.6.0
	$(PIP) --no-deps timm==1.0.31 pyyaml==6.0.4 safetensors==0.8.0 huggingface_hub==2.4.0
	# LXT 2.1, the AttnLRP oracle (lxt.explicit.functional imports only torch), without its dependencies.
	$(PIP) --no-deps lxt==2.1
	touch $@

clean:
	rm -rf $(VENV) build dist src/*.egg-info $(OUT)
