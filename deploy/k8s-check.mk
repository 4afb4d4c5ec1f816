# make k8s-check: every offline check of deploy/k8s, the Dockerfile, the alerts and the
# dashboards (deploy/check/run.py lists the steps). Included by the top-level Makefile.
# The first run installs the tools (network: PyPI and Debian only); later runs are offline.
# K8S_CRDS: the operators' CRD schemas (default ../shared/k8s-crds beside the repository).

K8S_VENV ?= $(or $(VENV),.venv)
K8S_BIN := $(K8S_VENV)/bin
K8S_CRDS ?= $(abspath $(CURDIR)/../shared/k8s-crds)
K8S_TOOLS_STAMP := $(K8S_VENV)/.k8s-check-tools
K8S_CHECKOV_STAMP := $(K8S_VENV)/checkov/.installed
K8S_PYTHON ?= $(or $(PYTHON),python3)

.PHONY: k8s-check k8s-check-tools

$(K8S_TOOLS_STAMP): deploy/check/requirements.txt | $(K8S_BIN)/postline
	$(K8S_BIN)/pip install --quiet -c constraints.txt -r deploy/check/requirements.txt
	@touch $@

$(K8S_CHECKOV_STAMP): deploy/check/requirements-checkov.txt
	$(K8S_PYTHON) -m venv $(K8S_VENV)/checkov
	$(K8S_VENV)/checkov/bin/pip install --quiet --upgrade pip
	$(K8S_VENV)/checkov/bin/pip install --quiet -r deploy/check/requirements-checkov.txt
	@touch $@

# unbound: tests/deploy/test_dane.py runs the rendered resolver config (a fresh machine
# has none, and under CI=true a missing unbound fails instead of skipping).
k8s-check-tools: $(K8S_TOOLS_STAMP) $(K8S_CHECKOV_STAMP)
	deploy/check/install-promtool.sh
	deploy/local/unbound.sh install

k8s-check: k8s-check-tools
	$(K8S_BIN)/python deploy/check/run.py --crds $(K8S_CRDS)

# Optional end-to-end (not part of k8s-check: it starts processes): a real Prometheus on
# 127.0.0.1 scrapes `postline run` under a short load; every dashboard query runs through its API.
.PHONY: k8s-e2e
k8s-e2e: k8s-check-tools
	$(K8S_BIN)/python deploy/check/e2e_prometheus.py
