#!/usr/bin/env bash
# prebuild.sh — the CUDA plugin of any commit, built here (no GPU needed) for bench/gpu/run.sh to
# carry to the lent GPU, which then need not compile it (a whole plugin is minutes there too):
#
#   bash bench/gpu/prebuild.sh                  this working tree -> .gpu-prebuilt/libmfa_cuda.so
#   bash bench/gpu/prebuild.sh REF base         commit REF -> .gpu-prebuilt/base.so.gz (ab's baseline)
#   bash bench/gpu/prebuild.sh REF NAME         commit REF -> .gpu-prebuilt/v-NAME.so.gz (a candidate
#                                               that `run.sh vcheck ab` checks and times)
#
# Other commits build in a temporary worktree (`git worktree`), each in its own build folder under
# ${MFA_PREBUILD_DIR:-/tmp/mfa-prebuild}, so rebuilding the same REF again is incremental. The
# gzipped copies keep the carried folder under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${MFA_PREBUILD_DIR:-/tmp/mfa-prebuild}
mkdir -p "$work" .gpu-prebuilt

build() { # source dir, build dir -> path of the plugin
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DMFA_CUDA=ON >"$2.log" 2>&1 ||
    { tail -20 "$2.log" >&2; exit 1; }
  cmake --build "$2" -j "$(nproc)" --target mfa_cuda >>"$2.log" 2>&1 || { tail -30 "$2.log" >&2; exit 1; }
  echo "$2/libmfa_cuda.so"
}

if [ $# -eq 0 ]; then
  lib=$(build "$root" "$work/tree")
  cp "$lib" .gpu-prebuilt/libmfa_cuda.so
  echo "this tree's plugin -> .gpu-prebuilt/libmfa_cuda.so"
  exit 0
fi

ref=$1 name=${2:?"usage: prebuild.sh [REF NAME]"}
case $name in *[!A-Za-z0-9_-]*) echo "prebuild.sh: NAME '$name': letters, digits, '-', '_' only"; exit 1 ;; esac
commit=$(git rev-parse --verify "$ref^{commit}")
wt="$work/wt-$name"
if [ -d "$wt" ]; then
  git -C "$wt" checkout -q --detach "$commit"
else
  git worktree add -q --detach "$wt" "$commit"
fi
lib=$(build "$wt" "$work/build-$name")
if [ "$name" = base ]; then out=.gpu-prebuilt/base.so.gz; else out=.gpu-prebuilt/v-$name.so.gz; fi
gzip -c "$lib" >"$out"
echo "$ref ($(git log --oneline -1 "$commit")) -> $out"
