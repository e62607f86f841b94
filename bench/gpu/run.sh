#!/usr/bin/env bash
# run.sh — everything the CUDA backend needs from the lent GPU, in one call:
#   1. build (the plugin from .gpu-prebuilt/ when carried, else compiled here), 2. the shared case
#   table on the cuda backend (`mfa check --backend cuda` and ctest with MFA_TEST_BACKEND=cuda),
#   3. compute-sanitizer memcheck and racecheck on a subset, 4. the benchmark (bench.py).
# Logs and results go to $OUT (the device tool brings them back); the last lines printed are the
# summaries. Usage on the device: bash bench/gpu/run.sh [check|sanitize|bench|quick|ab|vcheck|vsanitize|wgmma-ab|breakdown|ncu-bwd|ncu-bwd90|ncu-src|profile|dropin|pytest]...
# (default: the first three). Set MFA_SEED to replay inputs.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mfa-gpu}
mkdir -p "$OUT"
steps=${*:-check sanitize bench}
export MFA_SEED=${MFA_SEED:-$(date +%s)}
export PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv
  nvcc --version | tail -2
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), "triton", triton.__version__)'
  echo "MFA_SEED=$MFA_SEED"
} 2>&1 | tee "$OUT/env.txt"

# The check harness must mirror cases into device memory (see adapt_check.py).
python3 bench/gpu/adapt_check.py tests/check/check.c

B=build-gpu
t0=$(date +%s)
if [ -f .gpu-prebuilt/libmfa_cuda.so ]; then
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DMFA_CUDA=OFF >"$OUT/build.log" 2>&1 &&
    cmake --build $B -j 16 >>"$OUT/build.log" 2>&1 && cp .gpu-prebuilt/libmfa_cuda.so $B/
else
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DMFA_CUDA=ON >"$OUT/build.log" 2>&1 &&
    cmake --build $B -j 16 >>"$OUT/build.log" 2>&1
fi
rc=$?
echo "build: rc=$rc in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.txt"
[ $rc -eq 0 ] || { tail -30 "$OUT/build.log"; exit 1; }
./$B/mfa info 2>&1 | tee -a "$OUT/env.txt"

for step in $steps; do
  case $step in
  check)
    t0=$(date +%s)
    ./$B/mfa check --backend cuda >"$OUT/check.log" 2>&1
    echo "mfa check --backend cuda: rc=$? ($(( $(date +%s) - t0 )) s): $(tail -1 "$OUT/check.log")" | tee -a "$OUT/summary.txt"
    # on Hopper the same table again with the mma.sync kernels (MFA_CUDA_WGMMA=0), which the
    # wgmma ones replace there at most head dims
    MFA_CUDA_WGMMA=0 ./$B/mfa check --backend cuda >"$OUT/check-mma.log" 2>&1
    echo "MFA_CUDA_WGMMA=0 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-mma.log")" | tee -a "$OUT/summary.txt"
    # and with the fp32-accurate forward's workspace capped at 1 KiB: batched problems in chunks
    MFA_CUDA_SPLIT_WS_KB=1 ./$B/mfa check --backend cuda >"$OUT/check-chunks.log" 2>&1
    echo "MFA_CUDA_SPLIT_WS_KB=1 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-chunks.log")" | tee -a "$OUT/summary.txt"
    # and with the Hopper forward's other form where there are two (d64: short walks take the
    # plain two-blocks-an-SM loop, and the table's sequences are all short)
    MFA_CUDA_SHORT_WALK=0 ./$B/mfa check --backend cuda >"$OUT/check-long.log" 2>&1
    echo "MFA_CUDA_SHORT_WALK=0 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-long.log")" | tee -a "$OUT/summary.txt"
    # and with the Hopper forward's producer copying K/V by cp.async instead of the TMA unit
    MFA_CUDA_TMA=0 ./$B/mfa check --backend cuda >"$OUT/check-notma.log" 2>&1
    echo "MFA_CUDA_TMA=0 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-notma.log")" | tee -a "$OUT/summary.txt"
    # and with the producer form's persistent blocks each taking many work items (a grid of 3),
    # d64 in that form too, by TMA and by cp.async
    MFA_CUDA_FWD_BLOCKS=3 MFA_CUDA_SHORT_WALK=0 ./$B/mfa check --backend cuda >"$OUT/check-items.log" 2>&1
    echo "MFA_CUDA_FWD_BLOCKS=3 MFA_CUDA_SHORT_WALK=0 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-items.log")" |
      tee -a "$OUT/summary.txt"
    MFA_CUDA_FWD_BLOCKS=2 MFA_CUDA_TMA=0 ./$B/mfa check --backend cuda >"$OUT/check-items-notma.log" 2>&1
    echo "MFA_CUDA_FWD_BLOCKS=2 MFA_CUDA_TMA=0 mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/check-items-notma.log")" |
      tee -a "$OUT/summary.txt"
    grep -E "FAIL|SKIP" "$OUT/check.log" "$OUT/check-mma.log" "$OUT/check-chunks.log" "$OUT/check-long.log" \
      "$OUT/check-notma.log" "$OUT/check-items.log" "$OUT/check-items-notma.log" | head -20
    grep -A6 "FAIL" "$OUT/check.log" | head -60
    MFA_TEST_BACKEND=cuda ctest --test-dir $B -R test_cases >"$OUT/ctest.log" 2>&1
    echo "ctest (MFA_TEST_BACKEND=cuda): $(grep -E 'tests passed|tests failed' "$OUT/ctest.log")" | tee -a "$OUT/summary.txt"
    python3 bench/gpu/profile_one.py --lib $B --shape 2,2048,8,128 --causal --determinism 2>&1 | tail -1 | tee -a "$OUT/summary.txt"
    ;;
  sanitize)
    # one case under one tool; extra arguments: environment settings for the run (and its label)
    sanitize_case() {
      local tool=$1 f=$2
      shift 2
      env "$@" compute-sanitizer --tool $tool --error-exitcode 9 ./$B/mfa check --backend cuda --filter $f \
        >>"$OUT/sanitize.log" 2>&1
      echo "compute-sanitizer $tool $f${*:+ ($*)}: rc=$? $(grep -E '^=+ (ERROR SUMMARY|RACECHECK SUMMARY)' "$OUT/sanitize.log" | tail -1)" |
        tee -a "$OUT/summary.txt"
    }
    for tool in memcheck racecheck; do
      for f in bwd_causal_tl varlen_gqa4_bf16 s63_d256 bf16_s1000_causal bwd_varlen_causal_br_no_keys transposed_k \
        bwd_bf16_d128_causal_gqa2 bwd_f16_d256_window bwd_bf16_d96_varlen_causal_br \
        s1000_d128_causal dense_bool_causal_br_gqa2 bwd_bf16_s300_d64 bwd_f16_s777_d128_window_gqa4 \
        bwd_bf16_s333_dqk40_dv24_causal bwd_bf16_sq130_skv517_d64_br_gqa2 bwd_bf16_varlen_dqk200_dv256_causal_gqa2 \
        varlen_gqa2_causal_dqk100_dv52 decode_gqa8_sq6_causal_br_48rows decode_gqa4_sq16_bf16_d128_64rows \
        decode_gqa12_sq9_d40_108rows; do
        sanitize_case $tool $f
      done
      # d64 in the Hopper forward's long-walk form (the table's sequences pick the short one)
      for f in bf16_s1000_causal varlen_gqa4_bf16 dense_bf16; do
        sanitize_case $tool $f MFA_CUDA_SHORT_WALK=0
      done
      # the producer form's persistent blocks on many items each (Q buffers, slots over items)
      for f in bf16_s1000_causal varlen_gqa4_bf16 bf16_s777_d128_causal_gqa2 varlen_f16_d128_gqa2 s257_d256_bf16; do
        sanitize_case $tool $f MFA_CUDA_SHORT_WALK=0 MFA_CUDA_FWD_BLOCKS=3
      done
      sanitize_case $tool varlen_f16_d128_gqa2 MFA_CUDA_TMA=0 MFA_CUDA_FWD_BLOCKS=2
    done
    ;;
  profile)
    for k in fwd_kernel bwd_kernel; do
      ncu --kernel-name regex:$k --launch-count 1 --section SpeedOfLight --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
        python3 bench/gpu/profile_one.py --lib $B >"$OUT/ncu_$k.txt" 2>&1
      echo "ncu $k: rc=$?" | tee -a "$OUT/summary.txt"
      grep -E "Throughput|Pipe|Stall|Warp Cycles|Issued|Eligible|Achieved Occupancy|Registers|Shared Memory" "$OUT/ncu_$k.txt" | head -40
    done
    ;;
  breakdown)
    for c in "" --causal; do python3 bench/gpu/breakdown.py --lib $B $c 2>&1 | tee -a "$OUT/breakdown.txt"; done
    ;;
  ncu-bwd)
    for shape in 1,4096,8,256 16,1024,16,128; do
      ncu --kernel-name regex:bwd_kernel --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section WarpStateStats --section Occupancy --section SchedulerStats \
        python3 bench/gpu/profile_one.py --lib $B --shape $shape >"$OUT/ncu_bwd_${shape//,/-}.txt" 2>&1
      echo "ncu bwd_kernel $shape: rc=$?" | tee -a "$OUT/summary.txt"
    done
    ;;
  ncu-bwd90)
    # the Hopper backward's main kernel next to FlashAttention-2's on one shape (NCU_SHAPE, default
    # d64 S = 1k causal, the cell where it trails): speed of light, warp states, scheduler
    shape=${NCU_SHAPE:-16,1024,32,64}
    sections="--section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section Occupancy"
    ncu --kernel-name regex:bwd90_kernel --launch-count 1 $sections \
      python3 bench/gpu/profile_one.py --lib $B --shape $shape --causal >"$OUT/ncu_bwd90_${shape//,/-}.txt" 2>&1
    echo "ncu bwd90_kernel $shape causal: rc=$?" | tee -a "$OUT/summary.txt"
    cat >/tmp/fa2_bwd.py <<'PY'
import sys, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
B, S, H, D = map(int, sys.argv[1].split(","))
q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16))
torch.cuda.synchronize()
PY
    ncu --kernel-name regex:flash_bwd_dq_dk_dv --launch-count 1 $sections python3 /tmp/fa2_bwd.py "$shape" \
      >"$OUT/ncu_fa2_bwd_${shape//,/-}.txt" 2>&1
    echo "ncu FA2 bwd $shape causal: rc=$?" | tee -a "$OUT/summary.txt"
    ;;
  ncu-src)
    # one libmfa kernel (NCU_KERNEL regex, default the Hopper backward) on one shape (NCU_SHAPE,
    # NCU_CAUSAL=1 for causal), every ncu section and the per-instruction SASS page with its stall
    # samples (where the warps wait, instruction by instruction), as CSV
    shape=${NCU_SHAPE:-4,4096,16,128}
    causal=""; [ "${NCU_CAUSAL:-0}" = 1 ] && causal=--causal
    ncu --kernel-name regex:${NCU_KERNEL:-bwd90_kernel} --launch-count 1 --set full -f -o "$OUT/ncu-src" \
      python3 bench/gpu/profile_one.py --lib $B --shape $shape $causal >"$OUT/ncu-src.log" 2>&1
    echo "ncu ${NCU_KERNEL:-bwd90_kernel} $shape $causal: rc=$?" | tee -a "$OUT/summary.txt"
    ncu --import "$OUT/ncu-src.ncu-rep" --page details >"$OUT/ncu-src-details.txt" 2>&1
    ncu --import "$OUT/ncu-src.ncu-rep" --page source --csv --print-source sass >"$OUT/ncu-src-sass.csv" 2>&1
    echo "sass page: $(wc -l <"$OUT/ncu-src-sass.csv") lines" | tee -a "$OUT/summary.txt"
    gzip -f "$OUT/ncu-src.ncu-rep"
    ;;
  wgmma-ab)
    # the grid with the Hopper (wgmma) kernels off and on, FlashAttention-2 alongside
    # (AB_ARGS: bench.py grid filters, default both passes)
    for w in 0 1; do
      echo "== MFA_CUDA_WGMMA=$w" | tee -a "$OUT/wgmma-ab.txt"
      MFA_CUDA_WGMMA=$w python3 bench/gpu/bench.py --lib $B --out "$OUT/ab-w$w" ${AB_ARGS:---modes fwd bwd} --grid-only --peers flash \
        2>&1 | grep -v "^\s*$" | tee -a "$OUT/wgmma-ab.txt"
    done
    rm -rf "$OUT"/ab-w*
    ;;
  ab)
    # this build against a base plugin, alternated twice in one process each, FlashAttention-2 and
    # cuDNN alongside: .gpu-prebuilt/base.so.gz is a gzipped libmfa_cuda.so built here from the
    # commit to compare with; any .gpu-prebuilt/v-NAME.so.gz (other candidates) join the rotation
    # (AB_ARGS: bench.py grid filters, default the whole grid's forward)
    [ -f .gpu-prebuilt/base.so.gz ] || { echo "ab: no .gpu-prebuilt/base.so.gz"; continue; }
    libs="build-base $B"
    for z in .gpu-prebuilt/v-*.so.gz; do
      [ -f "$z" ] || continue
      d=build-$(basename "$z" .so.gz)
      rm -rf "$d" && cp -r $B "$d" && zcat "$z" >"$d/libmfa_cuda.so" && libs="$libs $d"
    done
    rm -rf build-base && cp -r $B build-base && zcat .gpu-prebuilt/base.so.gz >build-base/libmfa_cuda.so
    for L in $libs $libs; do
      echo "== $L" | tee -a "$OUT/ab.txt"
      python3 bench/gpu/bench.py --lib $L --out "$OUT/ab-tmp" --grid-only --peers flash cudnn ${AB_ARGS:---modes fwd} \
        2>&1 | grep -E "^(bfloat16|float16|float32) " | tee -a "$OUT/ab.txt"
    done
    rm -rf "$OUT/ab-tmp"
    ;;
  vcheck)
    # the table on every candidate plugin of the ab rotation (.gpu-prebuilt/v-NAME.so.gz), in the
    # default mode and with the persistent forward on 3 blocks, before timing them
    for z in .gpu-prebuilt/v-*.so.gz; do
      [ -f "$z" ] || continue
      d=build-$(basename "$z" .so.gz)
      rm -rf "$d" && cp -r $B "$d" && zcat "$z" >"$d/libmfa_cuda.so"
      ./$d/mfa check --backend cuda >"$OUT/vcheck.log" 2>&1
      echo "$d: mfa check --backend cuda: rc=$?: $(tail -1 "$OUT/vcheck.log")" | tee -a "$OUT/summary.txt"
      MFA_CUDA_FWD_BLOCKS=3 MFA_CUDA_SHORT_WALK=0 ./$d/mfa check --backend cuda >"$OUT/vcheck.log" 2>&1
      echo "$d: MFA_CUDA_FWD_BLOCKS=3 MFA_CUDA_SHORT_WALK=0: rc=$?: $(tail -1 "$OUT/vcheck.log")" | tee -a "$OUT/summary.txt"
    done
    ;;
  vsanitize)
    # memcheck and racecheck on every candidate plugin of the ab rotation (.gpu-prebuilt/v-NAME.so.gz),
    # a forward and a backward case at each of d64, d128 and d256 (VSANITIZE_CASES: other filters)
    for z in .gpu-prebuilt/v-*.so.gz; do
      [ -f "$z" ] || continue
      d=build-$(basename "$z" .so.gz)
      [ -d "$d" ] || { rm -rf "$d" && cp -r $B "$d" && zcat "$z" >"$d/libmfa_cuda.so"; }
      for tool in memcheck racecheck; do
        for f in ${VSANITIZE_CASES:-bf16_s1000_causal bwd_bf16_s300_d64 s1000_d128_causal bwd_bf16_d128_causal_gqa2 s257_d256_bf16 bwd_f16_d256_window}; do
          compute-sanitizer --tool $tool --error-exitcode 9 ./$d/mfa check --backend cuda --filter $f >"$OUT/vsanitize.log" 2>&1
          echo "$d: compute-sanitizer $tool $f: rc=$? $(grep -E '^=+ (ERROR SUMMARY|RACECHECK SUMMARY)' "$OUT/vsanitize.log" | tail -1)" |
            tee -a "$OUT/summary.txt"
        done
      done
    done
    ;;
  pytest)
    # the Python package's whole test suite (the CUDA tests run here only), through this build's
    # libraries without installing the package
    lib="$(pwd)/$B/libmfa.so"
    (cd bindings/python && PYTHONPATH=src MFA_LIBRARY="$lib" python3 -m pytest tests -q -x \
      >"$OUT/pytest.log" 2>&1)
    echo "pytest (bindings/python): rc=$?: $(tail -1 "$OUT/pytest.log")" | tee -a "$OUT/summary.txt"
    ;;
  dropin)
    # the Python drop-in (mfa.torch.scaled_dot_product_attention) against torch's default SDPA on
    # the anchor grid, through this build's libraries without installing the package
    PYTHONPATH=bindings/python/src MFA_LIBRARY=$B/libmfa.so python3 bindings/python/bench/sdpa_gpu.py \
      --json "$OUT/dropin.json" 2>&1 | tee "$OUT/dropin.txt" | grep -v "^\s*$"
    echo "dropin: $(tail -1 "$OUT/dropin.txt")" | tee -a "$OUT/summary.txt"
    ;;
  bench | quick)
    extra=""
    [ "$step" = quick ] && extra="--quick"
    python3 bench/gpu/bench.py --lib $B --out "$OUT" $extra 2>&1 | tee "$OUT/bench.log" | grep -v "^\s*$"
    ;;
  esac
done
# The device tool brings back at most 8 files: past that, all but the summary and the environment
# go into one archive (tar xzf logs.tgz to read them)
if [ "$(find "$OUT" -type f | wc -l)" -gt 8 ]; then
  (cd "$OUT" && tar czf /tmp/mfa-logs.tgz --exclude=./summary.txt --exclude=./env.txt . &&
    find . -type f ! -name summary.txt ! -name env.txt -delete && find . -mindepth 1 -type d -empty -delete &&
    mv /tmp/mfa-logs.tgz logs.tgz)
fi
echo "==== summary"
cat "$OUT/summary.txt"
