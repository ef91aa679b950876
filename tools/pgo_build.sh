#!/usr/bin/env bash
# The extension's release build, profile-guided, installed into the active venv by maturin develop.
#
# 1. An instrumented build runs tests/bench/pgo_train.py, an API's mix of traffic through Flask
#    and Django and calls of the Python API, and leaves raw profiles in target/pgo/raw.
# 2. llvm-profdata (rustup's llvm-tools, the same LLVM as rustc) merges them.
# 3. The final build reads the profile: hot code is laid out together
#    (.text.hot), cold blocks are split out of hot functions (-enable-split-machine-functions), and
#    code never run goes to .text.unlikely. Inside a framework's request the gate's cost is mostly
#    the cache lines it takes from the framework's own code and data, which this layout shrinks.
#
# `tools/pgo_build.sh wheel` also writes the final build as a wheel, in target/wheels.
# PGO=0 (or no llvm-profdata to be had) gives a plain release build.
set -euo pipefail
cd "$(dirname "$0")/.."
# An extension left by a build for another ABI tag (a version-specific `_native.cpython-3XX-*.so`
# beside the abi3 `_native.abi3.so`, or the reverse) would shadow or duplicate this build's.
rm -f python/ferrogate/_native*.so

final() {
    local how=$1
    shift
    if [ "$how" = wheel ]; then
        maturin build --release --quiet --out target/wheels "$@"
    fi
    # Also in wheel mode, so the venv is not left with the instrumented build.
    maturin develop --release --quiet "$@"
}

mode="${1:-develop}"
case "$mode" in
develop | wheel) ;;
*)
    echo "usage: tools/pgo_build.sh [develop|wheel]" >&2
    exit 2
    ;;
esac

plain() {
    echo "pgo_build: $1; plain release build" >&2
    final "$mode"
    exit 0
}

[ "${PGO:-1}" = 1 ] || plain "PGO=${PGO}"
profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    rustup component add llvm-tools >/dev/null 2>&1 || true
fi
[ -x "$profdata" ] || plain "no llvm-profdata (rustup component add llvm-tools failed)"

raw="$PWD/target/pgo/raw"
rm -rf "$raw"
mkdir -p "$raw"
# The flags after `--` go to rustc for this crate only: the dependencies are built once, the same
# for both stages, and only ferrogate itself is built twice.
maturin develop --release --quiet -- "-Cprofile-generate=$raw"
"${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python" tests/bench/pgo_train.py
"$profdata" merge -o "$raw/../ferrogate.profdata" "$raw"
final "$mode" -- "-Cprofile-use=$raw/../ferrogate.profdata" \
    -Cllvm-args=-enable-split-machine-functions -Clink-arg=-Wl,-z,keep-text-section-prefix
# LLVM ignores a profile that does not match the code it compiles, silently: then there is no
# hot section, and the build is plain in all but name.
so=$(ls python/ferrogate/_native*.so)
if command -v readelf >/dev/null && ! readelf -S -W "$so" | grep -q ' \.text\.hot '; then
    echo "pgo_build: $so has no .text.hot section: the profile was not applied" >&2
    exit 1
fi
