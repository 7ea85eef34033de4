#!/usr/bin/env bash
# cargo semver-checks for sequent-models and sequent-train against an earlier revision:
#
#     scripts/semver_checks.sh BASE_REVISION
#
# `cargo semver-checks --baseline-rev` builds each crate in a workspace of its own with every
# feature on (the `cuda` feature's build downloads LLVM) and fails there; this builds both
# revisions' rustdoc JSON in this workspace with the default features instead (stable rustdoc,
# RUSTC_BOOTSTRAP for its JSON output) and compares those. Needs `cargo install
# cargo-semver-checks`. Exits non-zero when a change needs a new major version (for 0.x crates,
# a new minor one).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?usage: scripts/semver_checks.sh BASE_REVISION}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --quiet --detach "$work/base" "$base"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sequent-target}/semver"
export RUSTC_BOOTSTRAP=1
status=0
for crate in sequent-models sequent-train; do
  json="$CARGO_TARGET_DIR/doc/${crate//-/_}.json"
  for side in current base; do
    dir=.
    [ "$side" = base ] && dir="$work/base"
    (cd "$dir" && cargo rustdoc --quiet -p "$crate" -- -Z unstable-options --output-format json)
    cp "$json" "$work/$crate-$side.json"
  done
  cargo semver-checks --baseline-rustdoc "$work/$crate-base.json" \
    --current-rustdoc "$work/$crate-current.json" || status=$?
done
exit "$status"
