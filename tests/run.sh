#!/usr/bin/env bash
# Runs every test of Relais, installing first what the tests need.
# Usage: tests/run.sh            (from anywhere; CI calls it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# The WebAssembly target plugins are built for.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

# Real mail servers for the mail-loop tests: Dovecot (IMAP) and Postfix
# (SMTP) on loopback ports, installed with apt-get when missing.
tests/mail-servers.sh start
trap 'tests/mail-servers.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(tests/mail-servers.sh env)"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# `--include-ignored`: the tests that need the mail servers are ignored by a
# bare `cargo test`.
cargo test --workspace --locked -- --include-ignored
# The shipped rules' own tests (also run by the integration tests).
cargo run --locked --quiet -- test rules/tests
# Every benchmark, in its short mode: a few samples each, their own
# assertions checked (effects as expected, hostile input refused or
# bounded, a warm start cheaper than a cold one), not their timings; a
# bench that no longer runs fails the build.
RELAIS_BENCH_SHORT=1 cargo test --locked -p relais --benches
