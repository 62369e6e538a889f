#!/usr/bin/env bash
# Tests of the Python package `tensim`, for CI: from any directory,
#   bash crates/python/run_tests.sh
# 1. a throwaway virtual environment with maturin, pytest and numpy;
# 2. `maturin build` (debug profile, extension-module feature from
#    pyproject.toml) and install of the wheel with its `ray` extra (the
#    tests of tensim.ray start a local 2-CPU Ray cluster);
# 3. `cargo build -p tensim` for the CLI the tests compare against;
# 4. pytest with TENSIM_BIN pointing at that CLI.
# Honours CARGO_TARGET_DIR. Exits non-zero on the first failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
caller="$PWD"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== virtual environment in $work"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "maturin>=1.5,<2" pytest numpy

echo "== wheel"
"$work/venv/bin/maturin" build --quiet \
    --manifest-path "$root/crates/python/Cargo.toml" \
    --interpreter "$py" --out "$work/wheels"
wheel="$(ls "$work"/wheels/tensim-*.whl)"
"$py" -m pip install --quiet --disable-pip-version-check "$wheel[ray]"

echo "== CLI"
cargo build --quiet -p tensim --manifest-path "$root/Cargo.toml"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$caller/$target" ;; esac  # cargo resolves it from the cwd

echo "== pytest"
cd "$work"  # import the installed wheel, not a source tree
TENSIM_BIN="$target/debug/tensim" "$py" -m pytest -q -p no:cacheprovider "$root/crates/python/tests"
