# The two commands of the README's quick start, the fast suite, the benchmarks, and the extra runs of .ci/run.
.PHONY: demo test fast bench ci-matrix

# Tests run in parallel (pytest-xdist), each file in one worker (its module-scoped servers start once): one
# worker per core, at most four (JOBS=0: all in one process, one after the other).
JOBS ?= auto
PYTEST = .venv/bin/python -m pytest -n $(JOBS) --maxprocesses 4 --dist loadfile
# Everything but the browser and the real-JupyterHub tests.
FAST = -m "not browser and not hub" --ignore=tests/browser --ignore=tests/hub/real

demo:
	scripts/bootstrap.sh demo
	.venv/bin/python scripts/demo.py

test:
	scripts/bootstrap.sh test
	$(PYTEST)

fast:
	scripts/bootstrap.sh test
	$(PYTEST) $(FAST)

bench:
	scripts/bootstrap.sh test
	.venv/bin/python -m benchmarks

# The fast suite at both ends of what pyproject.toml allows: the newest Python 3.10-3.13 found with the wheel built
# from the sdist, and the oldest at the lowest versions allowed (scripts/ci-matrix.sh says more).
ci-matrix:
	scripts/bootstrap.sh test
	scripts/ci-matrix.sh
