# The two commands of the README: `make serve` and `make test`. Both set up .venv first.
.PHONY: setup setup-dev serve test lint bench

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh dev

serve: setup
	.venv/bin/visionserve serve $(ARGS)

test: setup-dev
	.venv/bin/python -m pytest $(ARGS)

lint: setup-dev
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/mypy

bench: setup-dev
	.venv/bin/python benchmarks/engine.py
