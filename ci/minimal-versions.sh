#!/usr/bin/env bash
# Checks that the lowest versions the manifests allow still build: resolves
# every direct dependency of the workspace to the smallest version its
# requirement accepts (`cargo update -Z direct-minimal-versions`, nightly
# only; their own dependencies get the newest versions that fit) and checks
# the whole workspace, every target, with the pinned toolchain.
#
# Not `-Z minimal-versions`, which lowers the dependencies of dependencies
# too: what it tests is their manifests, not ours, and some are wrong (with
# it, hyper-util's `tower = "0.4"` resolves to tower 0.4.0, which does not
# build against the tower-layer it then gets); nothing in this workspace's
# manifests could fix that short of pinning crates we do not use.
#
# Cargo.lock is put back afterwards; the build goes to its own directory
# (target/minimal-versions) so that it does not evict the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain list | grep -q '^nightly' ||
    rustup toolchain install nightly --profile minimal >/dev/null

saved="$(mktemp)"
cp Cargo.lock "$saved"
trap 'cp "$saved" Cargo.lock; rm -f "$saved"' EXIT

cargo +nightly update -Z direct-minimal-versions --quiet
target="${CARGO_TARGET_DIR:-target}/minimal-versions"
CARGO_TARGET_DIR="$target" cargo check --workspace --all-targets --all-features --quiet
echo "minimal-versions: the workspace checks with every dependency at its lowest allowed version"
