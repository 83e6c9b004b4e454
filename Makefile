# The two commands from the README. Both install what they need (hack/bootstrap.sh).
.PHONY: demo test lint
SHELL := /bin/bash

demo:  ## control plane + emulators + operator + example SyncJobs, end to end
	hack/demo.sh

test:  ## lint, type-check and the whole test suite against a real control plane
	hack/test.sh

lint:
	hack/test.sh --lint-only
