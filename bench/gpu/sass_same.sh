#!/usr/bin/env bash
# sass_same.sh — whether a change leaves the compiled kernels as they were, without a GPU: each
# instantiation file is compiled from commit REF and from the working tree, and every kernel's
# SASS is compared instruction by instruction (addresses and encodings aside). A refactor that
# leaves them identical needs no GPU run to be trusted; one that does not is listed per kernel,
# and where only register numbers differ, with the lines, to read (not proof by itself).
#
#   bash bench/gpu/sass_same.sh REF ARCH FILE...
#   e.g. bash bench/gpu/sass_same.sh HEAD 90a src/cuda/kernels/inst/fwd90_bf16_d{64,128,256}.cu
#
# Needs nvcc and cuobjdump (CUOBJDUMP=path; this machine's toolkit has none: `pip download
# nvidia-cuda-cuobjdump` and unzip, docs/cuda.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ref=${1:?"usage: sass_same.sh REF ARCH FILE..."} arch=${2:?"usage: sass_same.sh REF ARCH FILE..."}
shift 2
cuobjdump=${CUOBJDUMP:-cuobjdump}
command -v "$cuobjdump" >/dev/null || { echo "sass_same.sh: no cuobjdump (set CUOBJDUMP)"; exit 2; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/ref" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/ref" "$ref"

sass() { # source root, file, out -> the SASS with addresses and encodings dropped
  nvcc -O3 -DNDEBUG -std=c++17 -D_GNU_SOURCE -I"$1/include" -I"$1/src" \
    -gencode=arch=compute_$arch,code=sm_$arch -cubin "$1/$2" -o "$3.cubin"
  "$cuobjdump" -sass "$3.cubin" | sed -E 's@/\*[0-9a-f]+\*/@@g; s@/\* 0x[0-9a-f]+ \*/@@g' | grep -v '^\s*$' >"$3"
}

status=0
for f in "$@"; do
  n=$(basename "$f" .cu)
  sass "$tmp/ref" "$f" "$tmp/$n.ref" &
  sass "$(pwd)" "$f" "$tmp/$n.new" &
  wait
  python3 - "$tmp/$n.ref" "$tmp/$n.new" "$n" <<'EOF' || status=1
import re, sys

def kernels(path):
    out, cur = {}, None
    for line in open(path):
        m = re.search(r"Function : (\S+)", line)
        if m:
            cur = m.group(1)
            out[cur] = []
        elif cur:
            out[cur].append(line.strip())
    return out

def regs_apart(code):
    """the same code whoever its registers are: register numbers dropped"""
    return [re.sub(r"\bU?R[0-9]+\b", "R", line) for line in code]

old, new, name = kernels(sys.argv[1]), kernels(sys.argv[2]), sys.argv[3]
same, renamed = True, []
for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if a == b:
        continue
    same = False
    if a is not None and b is not None and regs_apart(a) == regs_apart(b):
        # the same instructions on other registers: likely the allocator's choice, but not a proof
        # (a renaming can change which value an instruction reads), so the lines are shown
        renamed.append(k)
        print(f"{name}: SAME BUT FOR REGISTERS {k}: {sum(x != y for x, y in zip(a, b))} lines:")
        for x, y in zip(a, b):
            if x != y:
                print(f"    - {x}\n    + {y}")
        continue
    what = "only before" if b is None else "only after" if a is None else f"{len(a)} -> {len(b)} instructions"
    print(f"{name}: DIFFERENT {k} ({what})")
if same:
    print(f"{name}: the same SASS ({len(new)} kernels, {sum(map(len, new.values()))} instructions)")
sys.exit(0 if same else 1)
EOF
done
exit $status
