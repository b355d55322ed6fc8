#!/usr/bin/env bash
# The GPU path in one short run (issue 16): on a CUDA machine, from the repository root,
#
#     bash bench/gpu_check.sh            # results under $OUT (or bench/out/gpu_check)
#
# 1. the `gpu` tests (tests/core/test_gpu.py: CUDA training equals CPU, adapt + recommend,
#    no host synchronisation in a meta-step);
# 2. NCCL: `torchrun ... train --distributed --device cuda` on the sample data;
# 3. the speed bench (bench/speed.py) on ML-100K and ML-1M, CPU (1 thread) and CUDA;
# 4. the training loop's tasks/s (bench/dist_speed.py, 1 process) on ML-1M, CPU and CUDA;
# 5. the default training of ML-1M on CUDA (`train --device cuda --no-check`), time-boxed;
# then a table of tasks/s, CUDA against CPU (files *_dev: the CUDA runs, *_cpu: the CPU runs).
# Everything fits in GPU_CHECK_BUDGET_S (default
# 540 s); each stage gets a share and is cut (and counted as failed) past it.
# Data: $METAREC_DATASETS, else ../shared/datasets or shared/datasets (ml-100k/, ml-1m/);
# without them the benches use sample_data/. Exit status: 0 all passed, 1 a stage failed or
# timed out, 0 with "no CUDA" when this machine has neither a GPU nor a CUDA torch (nothing run),
# 2 when it has a GPU but this Python's torch cannot use it.
# GPU_CHECK_DEVICE=cpu rehearses every stage on the CPU (gloo for the distributed one): a check
# of this script, not GPU figures.
set -u -o pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
RES=${OUT:-bench/out/gpu_check}
mkdir -p "$RES"
if [ -n "${PY:-}" ]; then :; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()), torch.__version__, torch.version.cuda)" 2>&1) || {
    echo "gpu_check: FAILED: $PY cannot import torch: $cuda"; exit 2; }
read -r has_cuda torch_version cuda_version <<<"$cuda"
gpus=$(nvidia-smi -L 2>/dev/null || true)
DEV=${GPU_CHECK_DEVICE:-cuda}
if [ "$DEV" = cpu ]; then
    echo "gpu_check: REHEARSAL on the CPU (GPU_CHECK_DEVICE=cpu): these are not GPU figures"
elif [ "$has_cuda" != 1 ]; then
    if [ -n "$gpus" ]; then
        echo "gpu_check: FAILED: this machine has a GPU but $PY's torch $torch_version has no CUDA"
        echo "  ($gpus). Install a CUDA build of torch, e.g. pip install torch==${torch_version%%+*}"
        echo "  --index-url https://download.pytorch.org/whl/cu128, or set PY=... to one that has it."
        exit 2
    fi
    echo "gpu_check: no CUDA on this machine (torch $torch_version, torch.cuda.is_available() is"
    echo "  False, no GPU from nvidia-smi): nothing run, the GPU figures are still missing."
    exit 0
fi

fail=0
left() { echo $((BUDGET - ($(date +%s) - START))); }
# stage NAME MAX_S CMD...: run CMD with at most MAX_S seconds (less if the budget is short)
stage() {
    local name=$1 max=$2; shift 2
    local t; t=$(left)
    [ "$max" -lt "$t" ] || max=$t
    if [ "$max" -lt 15 ]; then echo "== $name: SKIPPED (budget spent)"; fail=1; return; fi
    echo "== $name (at most ${max} s)"
    local t0; t0=$(date +%s)
    timeout --kill-after=10 "$max" "$@" > "$RES/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$RES/$name.log"
    if [ $rc -eq 0 ]; then
        echo "== $name: ok in $(( $(date +%s) - t0 )) s"
    else
        [ $rc -eq 124 ] && echo "== $name: TIMED OUT after ${max} s" || echo "== $name: FAILED (exit $rc)"
        fail=1
    fi
}

echo "gpu_check: torch $torch_version, CUDA $cuda_version, budget ${BUDGET} s, results in $RES"
echo "$gpus"
DATA=""
for d in "${METAREC_DATASETS:-}" ../shared/datasets shared/datasets; do
    [ -n "$d" ] && [ -d "$d" ] && { DATA=$d; break; }
done
if [ -n "$DATA" ] && [ -f "$DATA/ml-100k/u.data" ]; then
    S100=(--data "$DATA/ml-100k/u.data" --items "$DATA/ml-100k/u.item")
else
    echo "gpu_check: no ml-100k under ${DATA:-(no datasets folder)}: the sample data stands in"
    S100=(--data sample_data/ratings.csv --items sample_data/items.csv)
fi
M1=()
if [ -n "$DATA" ] && [ -f "$DATA/ml-1m/ratings.csv" ]; then
    M1=(--data "$DATA/ml-1m/ratings.csv" --items "$DATA/ml-1m/items.csv")
else
    echo "gpu_check: no ml-1m under ${DATA:-(no datasets folder)}: its stages are skipped"
fi
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count() or 2)")

stage gpu_tests 150 "$PY" -m pytest -m gpu tests/core/test_gpu.py -q -p no:cacheprovider
stage nccl_train 90 "$PY" -m torch.distributed.run --nproc_per_node "$NGPU" --master_port 29517 \
    -m metarec_core train sample_data/ratings.csv --items sample_data/items.csv --device "$DEV" \
    --distributed --steps 30 --no-check --out "$RES/nccl_model.pt"
stage speed_100k_dev 60 "$PY" bench/speed.py "${S100[@]}" --device "$DEV" --repeats 3 --json "$RES/speed_100k_dev.json"
stage speed_100k_cpu 60 "$PY" bench/speed.py "${S100[@]}" --device cpu --threads 1 --repeats 3 --json "$RES/speed_100k_cpu.json"
if [ ${#M1[@]} -gt 0 ]; then
    stage speed_1m_dev 60 "$PY" bench/speed.py "${M1[@]}" --device "$DEV" --repeats 3 --json "$RES/speed_1m_dev.json"
    stage speed_1m_cpu 60 "$PY" bench/speed.py "${M1[@]}" --device cpu --threads 1 --repeats 3 --json "$RES/speed_1m_cpu.json"
    stage loop_1m_dev 50 "$PY" bench/dist_speed.py "${M1[@]}" --device "$DEV" --procs 1 --steps 40 --json "$RES/loop_1m_dev.json"
    stage loop_1m_cpu 50 "$PY" bench/dist_speed.py "${M1[@]}" --device cpu --procs 1 --steps 20 --json "$RES/loop_1m_cpu.json"
    stage train_1m_dev 400 "$PY" -m metarec_core train "$DATA/ml-1m/ratings.csv" \
        --items "$DATA/ml-1m/items.csv" --device "$DEV" --no-check --out "$RES/ml1m_dev.pt"
fi

"$PY" - "$RES" <<'PY'
import json, sys
from pathlib import Path
res = Path(sys.argv[1])
def load(name):
    p = res / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None
# this repo's dev box (docs/results.md, ML-100K, 1 thread): vectorised maml / fomaml
recorded = {"fast_so": 1095.0, "fast_fo": 2198.0}
rows = []
for ds in ("100k", "1m"):
    cpu, gpu = load(f"speed_{ds}_cpu"), load(f"speed_{ds}_dev")
    for key, label in (("fast_so", "vectorised maml"), ("fast_fo", "vectorised fomaml"),
                       ("loop_so", "per-task loop maml")):
        c = cpu and cpu["tasks_per_s"].get(key)
        g = gpu and gpu["tasks_per_s"].get(key)
        rec = recorded.get(key) if ds == "100k" else None
        rows.append((f"ml-{ds}", f"{label} tasks/s", c, g, rec))
    c = cpu and cpu["adapt_recommend_ms"]["p95"]
    g = gpu and gpu["adapt_recommend_ms"]["p95"]
    rows.append((f"ml-{ds}", "adapt+recommend p95 ms", c, g, None))
cpu, gpu = load("loop_1m_cpu"), load("loop_1m_dev")
rows.append(("ml-1m", "training loop tasks/s", cpu and cpu["runs"]["1"]["tasks_per_s"],
             gpu and gpu["runs"]["1"]["tasks_per_s"], None))
fmt = lambda v: "-" if v is None else f"{v:,.1f}"
print(f"\n{'data':8} {'measure':28} {'cpu':>10} {'cuda':>10} {'cuda/cpu':>9} {'dev box cpu':>12}")
for ds, what, c, g, rec in rows:
    ratio = "-" if not (c and g) else f"{g / c:.2f}x"
    print(f"{ds:8} {what:28} {fmt(c):>10} {fmt(g):>10} {ratio:>9} {fmt(rec):>12}")
PY
echo "gpu_check: $( [ $fail -eq 0 ] && echo "all stages passed" || echo "a stage FAILED" ) in $(( $(date +%s) - START )) s"
exit $fail
