# Two commands matter: `make run` starts the whole stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-stamp

.PHONY: run test deps dapr helm jaeger k8s k8s-build k8s-test tools images dapr-images lint typecheck unit integration fault-matrix newcomer compose bench bench-replicas bench-storage soak clean

# The lock is installed as it is, resolving nothing (--no-deps): an older pip (Python 3.11's
# bundled 23.2) otherwise resolves extras such as coverage[toml] itself and can pick a release
# newer than the lock. `pip check` then proves the lock complete: every requirement of every
# locked package is itself locked.
$(DEPS_STAMP): requirements-dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) >&2
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock >&2
	$(PY) -m pip check --disable-pip-version-check >&2
	@touch $@

deps: $(DEPS_STAMP)

# Builds daprd, placement and scheduler from Dapr's Go module (cached outside the repo).
dapr: deps
	$(PY) -m devstack build

# Builds helm from its Go module (cached outside the repo): tests/deploy lints and renders
# deploy/helm with it.
helm: deps
	$(PY) -m devstack.build.helm

# Builds Jaeger, the trace backend of OBSERVABILITY=true, from its Go module (cached the same way).
jaeger: deps
	$(PY) -m devstack.build.jaeger

# The Kubernetes dev cluster's Debian packages: containerd and runc (with docker.io, whose
# engine also builds the test images), the CNI plugins, conntrack, socat, iptables.
K8S_TOOLS := dockerd /usr/lib/cni/bridge conntrack socat iptables

# Builds kube (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl in one
# binary), etcd and CoreDNS from their Go modules (cached outside the repo like Dapr's).
k8s-build: deps
	$(PY) -m devstack.build.kubernetes

# A single-node Kubernetes cluster (issue 21) as supervised plain processes, until Ctrl-C;
# it prints the KUBECONFIG to export. Needs root. `$(PY) -m devstack.k8s purge` forgets it.
k8s: deps
	$(PY) -m devstack ensure-tools $(K8S_TOOLS)
	$(PY) -m devstack.k8s up

# The cluster's own tests on a private cluster (stop `make k8s` first: same ports and bridge):
# the cluster, then Dapr's chart and the project's (README's Kubernetes steps) on it, from images
# built here (debootstrap for the Redis and Python stand-ins when they are not current).
# Not part of `make test` until the tier fits its time budget (issue 21).
k8s-test: deps
	$(PY) -m devstack ensure-tools $(K8S_TOOLS) debootstrap
	$(PY) -m pytest -m k8s --durations=0 tests/k8s

# Debian packages: redis-server for the stack; docker.io (dockerd, containerd, runc),
# docker-compose and debootstrap for the container stack that the compose tests run;
# chromium for the browser tests (driven by Playwright, which cannot download its own here);
# nginx, the reverse proxy in front of the replicas (REPLICAS=N make run); prometheus for the
# observability stack (OBSERVABILITY=true make run).
tools: deps
	$(PY) -m devstack ensure-tools redis-server docker-compose dockerd debootstrap chromium nginx prometheus

# Local stand-ins for the compose files' images, for machines without registry access
# (Dapr's from the binaries `make dapr` builds, which it builds itself if need be). Prints the
# exports that select them and nothing else on standard output (all progress goes to standard
# error): eval "$$(make -s images)" && docker-compose up --build
# OBSERVABILITY=true adds docker-compose.observability.yml's Prometheus and Jaeger images
# (Jaeger built from its Go module first: several minutes cold).
images: deps
	@$(PY) -m devstack ensure-tools docker-compose dockerd debootstrap
	@$(PY) -m devstack images

# The images Dapr's Helm chart runs on Kubernetes (operator, sentry, injector, placement,
# scheduler, and daprd as the injected sidecar), from the binaries `make dapr` builds, tagged
# with the pinned version (deploy/k8s/dapr-values.yaml names them). Prints their names on
# standard output; DAPR_IMAGES_ARCHIVE=path also writes them to one archive (docker save) for a
# cluster's containerd: ctr -n k8s.io images import path.
dapr-images: deps
	@$(PY) -m devstack ensure-tools dockerd
	@$(PY) -m devstack dapr-images $(if $(DAPR_IMAGES_ARCHIVE),--save $(DAPR_IMAGES_ARCHIVE))

run: deps
	$(PY) -m devstack run

# ruff for style, lint-imports for the layer contracts in pyproject.toml.
lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

# The tests too: strict like the rest (about 26 s cold on 2 cores, 21 s without them).
typecheck: deps
	$(PY) -m mypy app devstack bench soak tests

# The browser tests (tests/browser) serve the app in-process too; they need only chromium
# (and nginx, to check the proxy configuration devstack generates).
# The console's browser tests need the real stack, so they sit in tests/integration
# (test_console.py, marked integration and browser) and run with `make integration`.
unit: deps helm
	$(PY) -m devstack ensure-tools chromium nginx
	$(PY) -m pytest -m "not integration and not compose and not newcomer and not k8s"

integration: deps tools dapr jaeger
	$(PY) -m pytest -m integration

# The fault matrix (part of `make integration` too), writing its table to docs/fault-matrix.md.
fault-matrix: deps tools dapr
	FAULT_MATRIX_REPORT=docs/fault-matrix.md $(PY) -m pytest tests/integration/test_fault_matrix.py -m integration

# README's first commands from a fresh copy, with a new venv for every supported Python.
newcomer: deps dapr
	$(PY) -m pytest tests/newcomer

# The container stack: starts dockerd if none runs (and stops it after), builds the images.
compose: deps tools dapr jaeger
	$(PY) -m pytest tests/compose

# Every check; branch coverage of app/ is printed at the end.
test: deps tools dapr helm jaeger lint typecheck
	$(PY) -m pytest -m "not k8s" --cov --cov-report=term --durations=20

bench: deps tools dapr jaeger
	$(PY) -m bench

# Throughput with 1, 2 and 3 replicas behind the proxy (README, Scale out).
bench-replicas: deps tools dapr
	$(PY) -m bench.replicas

# Redis keys and memory per finished order with the retention policy on (docs/storage.md).
bench-storage: deps tools dapr
	$(PY) -m bench.storage

# Chaos soak (docs/soak.md): 3,000 mixed orders on a private supervised stack (as `make run`
# supervises) while one component at a time is killed or frozen every 20-40 s; exits 1 unless
# every order finished, every fault healed and the auditor is clean. The seed is printed first.
# Options by environment or SOAK_ARGS: SOAK_ORDERS=300 make soak; make soak SOAK_ARGS='--seed 42'.
soak: deps tools dapr
	$(PY) -m soak $(SOAK_ARGS)

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
