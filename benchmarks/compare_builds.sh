#!/usr/bin/env bash
# Portable vs native build of lindiff, benchmarked side by side.
#
# Builds two wheels of the lindiff source tree into two fresh venvs,
#   portable: the default (-march=x86-64-v2)
#   native:   -DLINDIFF_NATIVE=ON (-march=native)
# then runs `bench_stats.py --quick` in each, once with the OpenBLAS provider (the default) and
# once with LINDIFF_BLAS=eigen (where Eigen's own kernels, and so the compiler flags, do the work),
# and prints the lindiff timings and ratios side by side.
#
# Usage:  benchmarks/compare_builds.sh [--skip-install | --install-only] [--ref GIT_REF]
#                                      [--repeat N] [--only LIST] [--pin CPU] [-- BENCH_ARGS...]
#   --ref REF      build both wheels from `git archive REF` instead of the working tree
#   --pin CPU      run the benchmarks under `taskset -c CPU` (one core: with `-- --threads 1
#                  --clock cpu` this gives CPU-time figures that survive a busy, shared host)
#   -- ARGS        passed on to bench_stats.py (after --quick)
# Environment:
#   SRC        lindiff source tree            (default: the repository holding this script)
#   WORKDIR    venvs, build trees and JSON    (default: /tmp)
#   PYTHON     interpreter for the venvs      (default: python3)
#   PIN        extra requirements installed in both venvs, so both use the same NumPy/OpenBLAS
#              (default: the NumPy/SciPy/threadpoolctl versions of the interpreter running this)
#
# Both wheels are built from ONE snapshot of the source ($WORKDIR/bench-src: the working tree's
# tracked and untracked-but-not-ignored files, or `git archive REF`), so a tree that is being edited
# meanwhile cannot give the two builds different sources. The build trees go to
# $WORKDIR/bench-<kind>-build (-C build-dir=...), never into the source tree, so an editable install
# of $SRC is left alone. Each build takes ~1-2 min on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="${SRC:-$(dirname "$HERE")}"
WORKDIR="${WORKDIR:-/tmp}"
PYTHON="${PYTHON:-python3}"
SKIP_INSTALL=0
INSTALL_ONLY=0
REF=""
PIN_CPU=""
BENCH_ARGS=(--quick)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --skip-install) SKIP_INSTALL=1; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    --ref) REF="$2"; shift 2 ;;
    --repeat) BENCH_ARGS+=(--repeat "$2"); shift 2 ;;
    --only) BENCH_ARGS+=(--only "$2"); shift 2 ;;
    --pin) PIN_CPU="$2"; shift 2 ;;
    --) shift; BENCH_ARGS+=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [[ -z "${PIN:-}" ]]; then
  PIN="$("$PYTHON" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
out = []
for name in ("numpy", "scipy", "threadpoolctl"):
    try:
        out.append(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        out.append(name)
print(" ".join(out))
PY
)"
  PIN="${PIN:-numpy scipy threadpoolctl}"
fi

build() {  # build <kind> <extra pip args...>
  local kind="$1"; shift
  local venv="$WORKDIR/bench-$kind-venv"
  echo "== [$kind] venv $venv"
  [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $PIN
  local t0=$SECONDS
  rm -rf "$WORKDIR/bench-$kind-build"  # a fresh configure: no cached -DLINDIFF_NATIVE from a previous run
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps \
      -C build-dir="$WORKDIR/bench-$kind-build" "$@" "$BUILD_SRC"
  echo "== [$kind] built and installed in $((SECONDS - t0)) s"
  (cd "$WORKDIR" && "$venv/bin/python" -c "import lindiff; print('   ', lindiff.show_config())")
}

snapshot() {
  local dest="$WORKDIR/bench-src"
  rm -rf "$dest"; mkdir -p "$dest"
  if [[ -n "$REF" ]]; then
    git -C "$SRC" archive "$REF" | tar -x -C "$dest"
    echo "== source: git archive $REF ($(git -C "$SRC" rev-parse --short "$REF")) -> $dest"
  else
    (cd "$SRC" && git ls-files -z -co --exclude-standard -- . ':!:build' ':!:benchmarks' \
       | tar --null -T - -c) | tar -x -C "$dest"
    echo "== source: working tree of $SRC (git $(git -C "$SRC" rev-parse --short HEAD)" \
         "+ $(git -C "$SRC" status --porcelain | wc -l) changed/untracked paths) -> $dest"
  fi
  BUILD_SRC="$dest"
}

if [[ $SKIP_INSTALL == 0 ]]; then
  snapshot
  build portable
  build native -C cmake.define.LINDIFF_NATIVE=ON
fi
[[ $INSTALL_ONLY == 1 ]] && exit 0

RUN=()
[[ -n "$PIN_CPU" ]] && RUN=(taskset -c "$PIN_CPU")
JSONS=()
for blas in openblas eigen; do
  for kind in portable native; do
    venv="$WORKDIR/bench-$kind-venv"
    out="$WORKDIR/bench-$kind-$blas.json"
    echo "== run: $kind build, provider $blas"
    # Run from $WORKDIR so that `import lindiff` finds the venv's installed copy, not a source tree.
    if [[ $blas == eigen ]]; then
      (cd "$WORKDIR" && LINDIFF_BLAS=eigen "${RUN[@]}" "$venv/bin/python" "$HERE/bench_stats.py" "${BENCH_ARGS[@]}" --json "$out")
    else
      (cd "$WORKDIR" && env -u LINDIFF_BLAS "${RUN[@]}" "$venv/bin/python" "$HERE/bench_stats.py" "${BENCH_ARGS[@]}" --json "$out")
    fi
    JSONS+=("$kind/$blas=$out")
  done
done

echo
echo "================ portable vs native, side by side ================"
(cd "$WORKDIR" && "$WORKDIR/bench-portable-venv/bin/python" "$HERE/bench_stats.py" --compare "${JSONS[@]}")
