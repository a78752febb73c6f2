# The two commands of the README's quick start, and the benchmarks.
.PHONY: demo test bench

demo:
	scripts/bootstrap.sh demo
	.venv/bin/python scripts/demo.py

test:
	scripts/bootstrap.sh test
	.venv/bin/python -m pytest

bench:
	scripts/bootstrap.sh test
	.venv/bin/python -m benchmarks
