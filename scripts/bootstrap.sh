#!/usr/bin/env bash
# Make the project's environment: a venv with the package (editable) and its extras, Debian's Chromium for the
# browser tests and configurable-http-proxy for the JupyterHub tests. Safe to run again: each step is skipped
# when what it makes is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
venv=.venv
python="${PYTHON:-python3}"

# pip, minus the warnings some machines' pip configuration prints for every package (find-links that do not
# exist); a failing pip still fails the script (pipefail).
pip() { "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; }

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  pip install --quiet --upgrade pip
fi
wanted="$extras"
[ "$extras" = "test" ] && wanted="test,frontends"  # the browser tests also try nbclassic and Voila
stamp="$venv/.installed-$extras"
# The JupyterLab extension (frontend/) is built by the install below (hatch_build.py, asked by
# SPECKLE_NB_AUTH_BUILD_LABEXTENSION), with Node.js and JupyterLab's jlpm; once, and again when its sources change.
built=speckle_nb_auth/labextension/static/style.js
if ! command -v node >/dev/null 2>&1; then
  echo "Node.js is missing: it builds the JupyterLab extension (frontend/). Install it (apt-get install nodejs)." >&2
  exit 1
fi
if [ -f "$built" ] && [ -n "$(find frontend/src frontend/style frontend/package.json -newer "$built" -print -quit)" ]; then
  rm -rf speckle_nb_auth/labextension "$stamp"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing speckle-nb-auth[$wanted] into $venv..."
  # uv (pinned as in the test extra) resolves and installs in a fraction of pip's time
  [ -x "$venv/bin/uv" ] || pip install --quiet "uv==0.13.9"
  [ -f "$built" ] || echo "Building the JupyterLab extension (frontend/) with Node.js..."
  # --reinstall-package: uv would reuse its cached build of this folder, made before the extension changed
  SPECKLE_NB_AUTH_BUILD_LABEXTENSION=1 "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --reinstall-package speckle-nb-auth -e ".[$wanted]"
  touch "$stamp"
fi

if [ "$extras" = "test" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "Installing Chromium from Debian's packages for the browser tests..."
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    else
      echo "Chromium is missing and this is not root: run 'sudo apt-get install -y chromium'." >&2
    fi
  fi
  if [ ! -x node_modules/.bin/configurable-http-proxy ] || [ ! -f node_modules/axe-core/axe.min.js ]; then
    echo "Installing configurable-http-proxy (the JupyterHub tests) and axe-core (the accessibility checks) from npm..."
    npm install --silent --no-audit --no-fund --no-save --prefix . configurable-http-proxy@5 axe-core@4 >/dev/null
  fi
fi
