# The two commands of the README's quick start, the benchmarks, and the extra runs of .ci/run.
.PHONY: demo test bench ci-matrix

demo:
	scripts/bootstrap.sh demo
	.venv/bin/python scripts/demo.py

test:
	scripts/bootstrap.sh test
	.venv/bin/python -m pytest

bench:
	scripts/bootstrap.sh test
	.venv/bin/python -m benchmarks

# The fast suite on every Python 3.10-3.13 found, from the wheel built from the sdist, and at the lowest versions
# pyproject.toml allows (scripts/ci-matrix.sh).
ci-matrix:
	scripts/bootstrap.sh test
	scripts/ci-matrix.sh
