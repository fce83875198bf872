#!/usr/bin/env bash
# `cargo build --features tt` (pccscope's root) must fail when there is no built tt-metal tree,
# and say exactly what is missing. Checks both cases: TT_METAL_HOME unset, and set to a
# directory that is not a built tree.
set -uo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "check-tt-feature-message: $*"; exit 1; }

out=$(env -u TT_METAL_HOME -u TT_METAL_BUILD_DIR cargo build --features tt 2>&1)
[ $? -ne 0 ] || fail "cargo build --features tt succeeded without TT_METAL_HOME"
for want in "TT_METAL_HOME is not set" "build/lib/_ttnncpp.so" "--features host-shim"; do
  grep -qF -- "$want" <<<"$out" || { echo "$out"; fail "message lacks: $want"; }
done

fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
out=$(env -u TT_METAL_BUILD_DIR TT_METAL_HOME="$fake" cargo build --features tt 2>&1)
[ $? -ne 0 ] || fail "cargo build --features tt succeeded with an empty TT_METAL_HOME"
for want in "is not a built tt-metal tree" "$fake/build/lib/_ttnncpp.so" "$fake/build/lib/libtt_metal.so" \
            "$fake/tt_metal/api/tt-metalium/host_api.hpp"; do
  grep -qF -- "$want" <<<"$out" || { echo "$out"; fail "message lacks: $want"; }
done
echo "cargo build --features tt: fails as documented without a tt-metal tree"
