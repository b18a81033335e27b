# `make demo` runs the appliance on the simulated rig; `make test` runs every test (it starts the test docker
# engine first). Both install what they need on a fresh machine.
PY ?= python3
VENV := .venv
PROXY_VENV := .venv-proxy
export APPLIANCE_LITELLM ?= $(CURDIR)/$(PROXY_VENV)/bin/litellm

.PHONY: install deps demo test testbed testbed-down render clean

install: deps $(VENV)/.installed $(PROXY_VENV)/.installed

# HAProxy is the front door (Debian's package). Installed without starting its packaged service.
deps:
	@command -v haproxy >/dev/null || { \
	  echo "installing haproxy (the front door) from Debian's packages …"; \
	  made=; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; \
	  rc=$$?; [ -n "$$made" ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; }

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
