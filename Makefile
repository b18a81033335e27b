# `make demo` runs the appliance on the simulated rig; `make test` runs every test (it starts the test docker
# engine first). Both install what they need on a fresh machine.
PY ?= python3
VENV := .venv
PROXY_VENV := .venv-proxy
export APPLIANCE_LITELLM ?= $(CURDIR)/$(PROXY_VENV)/bin/litellm

.PHONY: install demo test testbed testbed-down render clean

install: $(VENV)/.installed $(PROXY_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

$(PROXY_VENV)/.installed: requirements-proxy.txt
	$(PY) -m venv $(PROXY_VENV)
	$(PROXY_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-proxy.txt
	touch $@

demo: install
	$(VENV)/bin/appliance demo

testbed: install
	PYTHON=$(CURDIR)/$(VENV)/bin/python testbed/up

testbed-down:
	testbed/down

test: install testbed
	. "$${APPLIANCE_TESTBED_DIR:-/tmp/appliance-testbed}/env" && $(VENV)/bin/pytest -q

render: $(VENV)/.installed
	$(VENV)/bin/appliance render --all

clean:
	rm -rf $(VENV) $(PROXY_VENV)
