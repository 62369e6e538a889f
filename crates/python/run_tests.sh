#!/usr/bin/env bash
# Builds the Python wheel with maturin in a fresh virtual environment,
# installs it, and runs the pytest suite against the CLI's numbers.
# Run from anywhere; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2" pytest numpy
cargo build --quiet -p tensim --manifest-path "$root/Cargo.toml"
wheels="$(mktemp -d)"
"$venv/bin/maturin" build --quiet --manifest-path "$root/crates/python/Cargo.toml" --out "$wheels" --interpreter "$venv/bin/python"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$wheels"/tensim-*.whl
target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
TENSIM_BIN="$target/debug/tensim" "$venv/bin/python" -m pytest -q "$root/crates/python/tests"
