#!/usr/bin/env bash
# The release artifacts, into dist/ (or $1): one wheel for every CPython >= 3.11 (pyo3's stable
# ABI, abi3-py311) on manylinux_2_28 x86-64, and the sdist.
#
# manylinux_2_28: the extension must not need a glibc newer than 2.28. This machine's glibc is
# newer, so the link goes through zig (the `ziglang` package from PyPI, in requirements-dev.txt),
# which links against glibc 2.28's symbol versions; maturin then checks the result as auditwheel
# would and fails the build on any newer symbol.
#
# The wheel is a plain release build (no profile-guided stage) in its own target directory, so it
# neither waits on nor invalidates the editable build in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-wheel}
mkdir -p "$out"
rm -f "$out"/ferrogate-*.whl "$out"/ferrogate-*.tar.gz
maturin build --release --strip --zig --compatibility manylinux_2_28 --out "$out"
maturin sdist --out "$out"
ls -l "$out"
