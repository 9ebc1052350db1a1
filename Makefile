# k8slab.podnet — entry points. Everything runs as root on a Debian/Ubuntu host.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
NETNS_INV := inventories/netns
MODULES := $(basename $(notdir $(wildcard plugins/modules/*.py)))

# docs/lessons/ from a run of the lab (tests/integration/test_lessons.py writes the pages).
.PHONY: lessons
lessons: deps
	K8SLAB_LESSONS_WRITE=1 $(BIN)/pytest -q tests/integration/test_lessons.py

.PHONY: bench help deps lab lab-down status test test-unit test-doc test-sanity test-targets test-galaxy test-oldest test-lint test-integration test-molecule

help:
	@echo "make lab        build the single-host lab (network namespaces) and verify it"
	@echo "make lab-down   tear the single-host lab down"
	@echo "make status     show the single-host lab's nodes and pods"
	@echo "make test       install dependencies and run every test"

deps:
	@bash scripts/install-deps.sh

# LAB=name picks another lab name (the namespaces' prefix); the inventory's lab_name otherwise.
K8SLAB := $(strip scripts/k8slab $(if $(LAB),--lab $(LAB)))

lab: deps
	$(K8SLAB) up
	@echo
	@echo "The lab is up: its nodes are network namespaces on this host. Next:"
	@echo "  $(K8SLAB) status                       nodes, addresses, pods (--json too)"
	@echo "  $(K8SLAB) exec node-2 -- ip route       a command in a node (no command: a shell)"
	@echo "  $(K8SLAB) exec node-2/client-2 -- traceroute -n 10.244.1.2     ... in a pod"
	@echo "  make lab-down$(if $(LAB), LAB=$(LAB))                                remove it again"
	@echo "Ansible is in $(VENV)/bin (not on your PATH): e.g."
	@echo "  $(BIN)/ansible-playbook -i $(NETNS_INV) playbooks/verify.yml --tags path,http$(if $(LAB), -e lab_name=$(LAB))"
	@echo "  or first: . $(BIN)/activate"

lab-down: deps
	$(K8SLAB) down

status:
	@$(K8SLAB) status

test: deps test-unit test-doc test-sanity test-lint test-galaxy test-targets test-integration test-molecule test-oldest

test-unit:
	$(BIN)/pytest -q tests/unit

# One ansible-doc call per plugin type; it exits 0 even for a plugin it cannot find, so check
# that every requested plugin came back with a doc.
DOC_CHECK := import json, sys; d = json.load(sys.stdin); bad = [n for n in sys.argv[1:] if not d.get(n, {}).get("doc")]; print("ansible-doc failed:", *bad) if bad else None; sys.exit(bool(bad))
# Filters: the list comes from the plugins themselves, so a filter without its doc file
# (plugins/filter/<name>.yml) shows as UNDOCUMENTED. Roles: every role has an argument spec
# (meta/argument_specs.yml, entry point main) and a README.md.
ROLES := $(notdir $(wildcard roles/*))
FILTER_CHECK := import json, sys; d = json.load(sys.stdin); bad = sorted(n for n, s in d.items() if s == "UNDOCUMENTED"); print("filters without documentation:", *bad) if bad or not d else print("ansible-doc: %d filters documented" % len(d)); sys.exit(bool(bad) or not d)
ROLE_CHECK := import json, os, sys; d = json.load(sys.stdin); bad = [r for r in sys.argv[1:] if "main" not in d.get("k8slab.podnet." + r, {}).get("entry_points", {}) or not os.path.isfile("roles/%s/README.md" % r)]; print("roles without meta/argument_specs.yml (main) or README.md:", *bad) if bad else print("ansible-doc: %d roles documented" % len(sys.argv[1:])); sys.exit(bool(bad))
test-doc:
	@n=0; for t in module connection inventory callback; do \
	  d=$$t; [ $$t != module ] || d=modules; \
	  names=$$(for f in plugins/$$d/*.py; do [ -e "$$f" ] && echo k8slab.podnet.$$(basename "$$f" .py); done); \
	  [ -n "$$names" ] || continue; \
	  $(BIN)/ansible-doc -t $$t --json $$names | $(BIN)/python -c '$(DOC_CHECK)' $$names || exit 1; \
	  n=$$((n + $$(echo $$names | wc -w))); \
	done; echo "ansible-doc: $$n plugins render"
	@$(BIN)/ansible-doc -t filter -l k8slab.podnet --json | $(BIN)/python -c '$(FILTER_CHECK)'
	@$(BIN)/ansible-doc -t role -l k8slab.podnet --json | $(BIN)/python -c '$(ROLE_CHECK)' $(ROLES)

test-sanity:
	bash scripts/ansible-test.sh sanity

# The reusable modules' targets (tests/integration/targets/), as ansible-test runs them.
test-targets:
	bash scripts/ansible-test.sh integration

# Galaxy's own import check on the built tarball (galaxy-importer in a virtualenv of its own:
# it pins its own ansible-core and ansible-lint).
GALAXY_VENV := .venv-galaxy
# Galaxy refuses a collection without a repository URL, and the project has none yet: the
# check then builds from a copy whose galaxy.yml names this checkout (set GALAXY_REPOSITORY).
GALAXY_REPOSITORY ?= file://$(CURDIR)
# The one warning accepted: the sanity ignore files exist. Their only statements are
# validate-modules:missing-gplv3-license (the collection is MIT, the check wants GPLv3 headers);
# tests/unit/test_collection_meta.py keeps it that way.
GALAXY_ACCEPTED := ^WARNING: Ignore files skip ansible-test sanity tests, found ignore-2\.[0-9]+\.txt
test-galaxy:
	@[ -x $(GALAXY_VENV)/bin/python ] && [ ! requirements-galaxy.txt -nt $(GALAXY_VENV)/.installed ] || { \
	  python3 -m venv $(GALAXY_VENV) && $(GALAXY_VENV)/bin/pip install -q -r requirements-galaxy.txt 2>&1 \
	    | { grep -v "is ignored: it is neither a file nor a directory" || true; }; touch $(GALAXY_VENV)/.installed; }
	rm -rf build/galaxy && mkdir -p build/galaxy/src
	tar -c --exclude=./build --exclude='./.venv*' --exclude=./.collections --exclude=./collections --exclude=./.git . | tar -x -C build/galaxy/src
	@grep -q '^repository:' galaxy.yml || { echo "galaxy.yml names no repository (Galaxy requires one to publish): checking with repository: $(GALAXY_REPOSITORY)"; \
	  echo 'repository: $(GALAXY_REPOSITORY)' >> build/galaxy/src/galaxy.yml; }
	$(BIN)/ansible-galaxy collection build --force --output-path build/galaxy build/galaxy/src
	cd build/galaxy && ../../$(GALAXY_VENV)/bin/python -m galaxy_importer.main k8slab-podnet-*.tar.gz | tee importer.log
	@! grep -E '^(ERROR|WARNING)' build/galaxy/importer.log | grep -qvE '$(GALAXY_ACCEPTED)' \
	  || { echo "galaxy-importer reported errors or warnings"; exit 1; }
	$(GALAXY_VENV)/bin/antsibull-changelog lint

# The oldest ansible-core this collection claims (meta/runtime.yml), in a second virtualenv:
# unit tests, sanity and one lab build + verification (the newest runs in .venv). Sanity
# without pylint: style does not depend on the core (test-sanity runs it), and it is 70% of
# the sanity time.
OLDEST_VENV := .venv-oldest
test-oldest:
	@[ -x $(OLDEST_VENV)/bin/ansible-playbook ] && [ ! requirements-oldest.txt -nt $(OLDEST_VENV)/.installed ] || { \
	  python3 -m venv $(OLDEST_VENV) && $(OLDEST_VENV)/bin/pip install -q -r requirements-oldest.txt 2>&1 \
	    | { grep -v "is ignored: it is neither a file nor a directory" || true; }; touch $(OLDEST_VENV)/.installed; }
	$(OLDEST_VENV)/bin/python -c 'from ansible.release import __version__ as v; print("ansible-core", v)'
	$(OLDEST_VENV)/bin/pytest -q tests/unit
	VENV=$(OLDEST_VENV) bash scripts/ansible-test.sh sanity --skip-test pylint
	K8SLAB_ANSIBLE_BIN=$(CURDIR)/$(OLDEST_VENV)/bin scripts/k8slab --lab kgoldest up; rc=$$?; \
	  K8SLAB_ANSIBLE_BIN=$(CURDIR)/$(OLDEST_VENV)/bin scripts/k8slab --lab kgoldest down; exit $$rc

test-lint:
	$(BIN)/ansible-lint --profile production --nocolor

# In parallel (pytest-xdist), a file per worker at a time so that a file's lab is built once;
# then, one at a time, the tests marked exclusive (they compare or change host-wide state).
TEST_WORKERS ?= $(shell nproc)
test-integration:
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m 'not exclusive' tests/integration
	$(BIN)/pytest -q -m exclusive tests/integration

# The benchmark (docs/benchmark.md): not a test. Pass options with BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--sizes ref,3x2 --repeat 5"
bench: deps
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

test-molecule:
	@if [ -f molecule/default/molecule.yml ]; then $(BIN)/molecule test -s default; fi

# The three-VM lab on this machine (vagrant-libvirt, software emulation; minutes, not CI):
# builds or reuses a local Debian box, vagrant up, site.yml through inventories/vagrant,
# shows the verification, destroys the VMs. See docs/vagrant.md.
.PHONY: vagrant-lab
vagrant-lab:
	bash scripts/vagrant-lab.sh all
