#!/usr/bin/env bash
# Packages every published crate as `cargo publish` would and builds each one
# from its .crate file alone (cargo package's verification), so a file that the
# build needs but the package leaves out (a path outside the crate, a file
# missing from `include`) fails here. `asyncio-bench` is not published.
# --allow-dirty: a local run with uncommitted edits packages them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Verification resolves the crates against each other through a temporary
# registry that stands in for crates.io; cargo unpacks their .crate files
# under $CARGO_HOME/registry/src and, the version being unchanged, reuses an
# unpacked copy from an earlier run, which would verify against stale sources.
# Remove this workspace's own unpacked copies (and nothing else) first.
registry_src="${CARGO_HOME:-$HOME/.cargo}/registry/src"
cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; [print(p["name"] + "-" + p["version"]) for p in json.load(sys.stdin)["packages"]]' |
    while read -r crate; do
        rm -rf "$registry_src"/*/"$crate"
    done

# The same goes for what cargo compiled from those sources: a registry crate's
# build is never rebuilt for a change of its contents. So the packages build in
# a target directory of their own, emptied first (only the few dependencies of
# the published crates build there; about a minute on 2 cores).
target="${CARGO_TARGET_DIR:-target}/package-verify"
rm -rf "$target"
CARGO_TARGET_DIR="$target" cargo package --workspace --exclude asyncio-bench --allow-dirty --quiet
echo "package: every published crate builds from its .crate file"
