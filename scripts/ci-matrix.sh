#!/usr/bin/env bash
# The fast suite (everything but the browser and JupyterHub tests) at both ends of what pyproject.toml allows:
# on the newest Python 3.10-3.13 found on this machine with the newest dependencies, from the wheel built from the
# sdist; and on the oldest at the lowest versions allowed (uv pip install --resolution lowest-direct), after
# checking that every declared lower bound is exactly the version installed. make test ran the whole suite on
# .venv's Python. CI_MATRIX_ALL=1 adds a leg for every other Python found (within CI's time only on a machine with
# more than two cores). Each leg has its own venv under .venv-matrix/; they use .venv's uv (make test installs
# it), are made at the same time and share uv's cache; the suites run two at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-.venv/bin/uv}"
matrix=.venv-matrix
# Never the browser or JupyterHub tests, by their markers and by their folders (tests/hub/real; the hub service's
# own tests, in tests/hub, need no hub and stay). What does not depend on the Python or on the dependencies'
# versions ran once already, in make test: the project's own checks (tests/project: the pinned lint and type tools,
# the packaging checks, the demo, the code's structure), the panel's ES module in Chromium, pre-commit's own
# install of the hook, and the terminal commands in subprocesses (stdlib argparse, getpass and a browser stand-in
# around the same client code the other tests run at both ends).
fast=(-m "not browser and not hub" --ignore=tests/browser --ignore=tests/hub/real -q -p no:cacheprovider
      --ignore=tests/project --ignore=tests/kernel/test_panel_esm.py --ignore=tests/kernel/test_cli.py
      --deselect tests/kernel/test_hygiene.py::test_the_shipped_hook_installs_and_runs_as_pre_commit_installs_it)
[ -x "$uv" ] || { echo "ci-matrix: $uv is missing: run 'make test' first, which installs it." >&2; exit 1; }

# The newest patch release of each minor version under pyenv, else the one on PATH.
pythons=()
for minor in 10 11 12 13; do
  found=$(ls -d "$HOME"/.pyenv/versions/3."$minor".*/bin/python3."$minor" 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] || found=$(command -v python3."$minor" || true)
  if [ -n "$found" ] && "$found" -c "import venv" 2>/dev/null; then
    pythons+=("$found")
  fi
done
if [ ${#pythons[@]} -eq 0 ]; then
  echo "ci-matrix: found no Python 3.10-3.13 (looked in ~/.pyenv/versions and on PATH)." >&2
  exit 1
fi
echo "ci-matrix: interpreters found:"
for python in "${pythons[@]}"; do echo "  $("$python" -c 'import platform; print(platform.python_version())')  $python"; done

started=$(date +%s)
rm -rf "$matrix"
mkdir -p "$matrix"
"$uv" build --quiet --out-dir "$matrix/dist" . # the sdist, then the wheel built from it
wheel=$(ls "$matrix"/dist/*.whl)

# Legs: NAME PYTHON WHAT-TO-INSTALL [uv pip install options]. make test ran the whole suite on .venv's Python
# already (in a venv of its own), so that one gets no leg here.
covered=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
legs=()
newest="${pythons[${#pythons[@]}-1]}"
for python in "${pythons[@]}"; do
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$version" = "$covered" ]; then
    echo "ci-matrix: py$version: make test ran the whole suite on it, in .venv"
  elif [ "$python" = "$newest" ] || [ "${CI_MATRIX_ALL:-0}" = 1 ]; then
    legs+=("py$version|$python|$wheel[test]|")
  else
    echo "ci-matrix: py$version: between the two ends, left out (CI_MATRIX_ALL=1 runs it)"
  fi
done
legs+=("lowest|${pythons[0]}|.[test]|--resolution lowest-direct")

install() {
  local name=$1 python=$2 what=$3 options=$4 venv="$matrix/$1"
  "$uv" venv --quiet --python "$python" "$venv"
  # shellcheck disable=SC2086  # options is empty or one flag and its value
  "$uv" pip install --quiet --python "$venv/bin/python" $options "$what"
}
pids=()
for leg in "${legs[@]}"; do
  IFS='|' read -r name python what options <<<"$leg"
  install "$name" "$python" "$what" "$options" >"$matrix/$name.install.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    IFS='|' read -r name _ <<<"${legs[$i]}"
    echo "ci-matrix: installing leg $name failed:" >&2
    cat "$matrix/$name.install.log" >&2
    exit 1
  fi
done
echo "ci-matrix: venvs made in $(( $(date +%s) - started ))s"

shown='^(anywidget|httpx|ipython|ipywidgets|jupyter-core|jupyter-server|keyring|python-dotenv|tornado|traitlets|specklepy|graphql-core|ipykernel|jupyterlab|notebook|nbclient|pytest|hypothesis)=='
run_leg() {
  local name=$1 what=$2 options=$3 venv="$matrix/$1" status=0 leg_started result
  leg_started=$(date +%s)
  {
    echo "== $name: Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), $what ${options:+($options)}"
    "$uv" pip list --python "$venv/bin/python" --format freeze 2>/dev/null | { grep -iE "$shown" || true; } | paste -sd ' ' -
  } >"$matrix/$name.head"
  if [ "$name" = lowest ] && ! "$venv/bin/python" scripts/check_floors.py test >>"$matrix/$name.head" 2>&1; then
    echo "$name: a declared lower bound is not what the lowest resolution installs (see above)" >"$matrix/$name.result"
    return 1
  fi
  # The venv's pytest, not `python -m pytest`: the tests import the installed package, not the checkout.
  MYPY_CACHE_DIR="$venv/.mypy_cache" RUFF_CACHE_DIR="$venv/.ruff_cache" \
    "$venv/bin/pytest" "${fast[@]}" >"$matrix/$name.log" 2>&1 || status=$?
  result=$({ grep -E '[0-9]+ (passed|failed|error)' "$matrix/$name.log" || true; } | tail -n 1 | tr -d '=' | sed 's/^ *//')
  [ "$status" -ne 5 ] || result="ran no tests"
  echo "$name: ${result:-pytest exited $status} ($(( $(date +%s) - leg_started ))s)" >"$matrix/$name.result"
  [ "$status" -eq 0 ]
}

# Two legs at a time by default: a leg keeps about one core busy (CI_MATRIX_JOBS=1 runs them one by one).
jobs_max="${CI_MATRIX_JOBS:-2}"
for leg in "${legs[@]}"; do
  IFS='|' read -r name _ what options <<<"$leg"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_leg "$name" "$what" "$options" &
done
failed=0
for pid in $(jobs -p); do wait "$pid" || failed=1; done

for leg in "${legs[@]}"; do
  IFS='|' read -r name _ <<<"$leg"
  echo
  cat "$matrix/$name.head" 2>/dev/null || true
  [ ! -f "$matrix/$name.log" ] || tail -n 15 "$matrix/$name.log"
done
echo
echo "ci-matrix summary ($(( $(date +%s) - started ))s in all; logs in $matrix/):"
for leg in "${legs[@]}"; do
  IFS='|' read -r name _ <<<"$leg"
  echo "  $(cat "$matrix/$name.result" 2>/dev/null || echo "$name: stopped before its suite ran")"
  # a leg passed when pytest's closing line says passed and nothing failed
  grep -q ' passed' "$matrix/$name.result" 2>/dev/null && ! grep -qE ' (failed|error)' "$matrix/$name.result" \
    || failed=1
done
count() { cat "$matrix"/*.result 2>/dev/null | grep -oE "[0-9]+ ($1)" | awk '{n += $1} END {print n + 0}'; }
echo "ci-matrix: $(count passed) passed, $(count 'failed|errors?') failed"
exit "$failed"
