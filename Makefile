# k8slab.podnet — entry points. Everything runs as root on a Debian/Ubuntu host.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
NETNS_INV := inventories/netns
MODULES := $(basename $(notdir $(wildcard plugins/modules/*.py)))

.PHONY: help deps lab lab-down test test-unit test-doc test-sanity test-lint test-integration test-molecule

help:
	@echo "make lab        build the single-host lab (network namespaces) and verify it"
	@echo "make lab-down   tear the single-host lab down"
	@echo "make test       install dependencies and run every test"

deps:
	@bash scripts/install-deps.sh

lab: deps
	$(BIN)/ansible-playbook -i $(NETNS_INV) site.yml
	@echo; echo "Lab is up. Try:  $(BIN)/ansible-playbook -i $(NETNS_INV) playbooks/verify.yml   |   make lab-down"

lab-down: deps
	$(BIN)/ansible-playbook -i $(NETNS_INV) playbooks/netns_lab_down.yml

test: deps test-unit test-doc test-sanity test-lint test-integration test-molecule

test-unit:
	$(BIN)/pytest -q tests/unit

test-doc:
	@for m in $(MODULES); do \
	  $(BIN)/ansible-doc k8slab.podnet.$$m > /dev/null || { echo "ansible-doc k8slab.podnet.$$m failed"; exit 1; }; \
	done; echo "ansible-doc: $(words $(MODULES)) modules render"

test-sanity:
	bash scripts/sanity.sh

test-lint:
	$(BIN)/ansible-lint --profile production

test-integration:
	$(BIN)/pytest -q tests/integration

test-molecule:
	@if [ -f molecule/default/molecule.yml ]; then $(BIN)/molecule test -s default; fi
