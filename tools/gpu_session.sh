#!/usr/bin/env bash
# One leased-GPU session, run from the repository root (python3 = the machine's CUDA torch):
#   1. GPU tests (tests/test_gpu.py), 2. the real-size speed benchmark (benchmarks/gpu_edit.py),
#   3. synth stage 4 (configs/train_synth_stage4.json) sized to the time left, 4. a quick GPU evaluation.
# Everything it keeps lands in $OUT (at most 8 files). The whole script stops itself by BUDGET_S.
set -u
OUT=${OUT:-/tmp/gpu_session_out}
BUDGET_S=${BUDGET_S:-540}
INIT=${INIT:-checkpoints/synth}  # the checkpoint stage 4 continues from (the recorded recipe: stage 3's)
mkdir -p "$OUT"
T0=$(date +%s)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, transformers, accelerate, peft; print('torch', torch.__version__, 'diffusers', \
diffusers.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'peft', \
peft.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" || exit 1

log "data"
python3 -m reasonbrain synthworld --n "${N:-20000}" --out data/synth --seed 0 --no-progress 2>&1 | tail -1
python3 -m reasonbrain synthworld --n "${EXTRA_N:-40000}" --out data/synth_extra --seed 1 --split-fractions 1 0 0 \
  --chains 0 --no-progress 2>&1 | tail -1

log "gpu tests"
[ -n "${SKIP_TESTS:-}" ] || timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15

log "calibration: 60 stage-4 steps"
python3 - <<'EOF'
import json
c = json.load(open("configs/train_synth_stage4.json"))
c.update(max_steps=60, log_every=10, lr_warmup_steps=10, output_dir="/tmp/calib", val_every=60, save_every=10**9)
json.dump(c, open("/tmp/calib.json", "w"))
EOF
rm -rf /tmp/calib  # a warm machine keeps the last call's files
C0=$(date +%s)
timeout 150 python3 -m reasonbrain.training.train --config /tmp/calib.json --init-checkpoint "$INIT" \
  > /tmp/calib.log 2>&1
CALIB_RC=$?
CALIB_WALL=$(( $(date +%s) - C0 ))
tail -4 /tmp/calib.log; cat /tmp/calib/metrics.csv 2>/dev/null
log "calibration rc=$CALIB_RC wall=${CALIB_WALL}s"

log "benchmark"
timeout "${BENCH_TIMEOUT:-180}" python3 benchmarks/gpu_edit.py ${BENCH_ARGS:---presets reasonbrain-3b reasonbrain-7b --steps 20 50 --repeats 3} --json-out "$OUT/gpu_edit.json" \
  > "$OUT/gpu_edit.log" 2>&1
log "benchmark rc=$?"
tail -60 "$OUT/gpu_edit.log"

EVAL_RESERVE=${EVAL_RESERVE:-75}
if [ "$CALIB_RC" = 0 ]; then
  STEPS=$(python3 - "$CALIB_WALL" "$(left)" "$EVAL_RESERVE" <<'EOF'
import csv, sys
wall, left, reserve = (float(a) for a in sys.argv[1:])
rows = list(csv.DictReader(open("/tmp/calib/metrics.csv")))
per_step = (float(rows[-1]["elapsed_s"]) - float(rows[0]["elapsed_s"])) / (int(rows[-1]["step"]) - int(rows[0]["step"]))
fixed = wall - float(rows[-1]["elapsed_s"])  # start-up + one validation + save
budget = left - reserve - fixed
steps = int(budget / per_step)  # a little optimistic: the loop's wall-time cap ends it if need be
print(max(0, min(steps, 20000)))
print(f"per step {per_step:.3f} s, fixed {fixed:.0f} s, left {left:.0f} s -> {steps} steps", file=sys.stderr)
EOF
)
  log "stage 4: $STEPS steps"
  if [ "${STEPS:-0}" -ge 200 ]; then
    # the loop stops itself (saving) at --max-wall-time-s; timeout is only the backstop
    python3 -c "import json; c = json.load(open('configs/train_synth_stage4.json')); c['stop_after_steps'] = None; \
json.dump(c, open('/tmp/stage4.json', 'w'))"  # sized by the calibration instead of the recorded recipe's stop
    timeout $(( $(left) - 20 )) python3 -m reasonbrain.training.train --config /tmp/stage4.json \
      --init-checkpoint "$INIT" --max-steps "$STEPS" --max-wall-time-s $(( $(left) - EVAL_RESERVE - 30 )) \
      > runs_stage4.log 2>&1
    log "stage 4 rc=$?"
    grep -E "validation|Error|error" runs_stage4.log | tail -8
  fi
fi

RUN=runs/synth_stage4
if [ -d "$RUN/checkpoint" ]; then
  log "evaluation"
  timeout $(( $(left) - 15 )) python3 -m reasonbrain.evaluation.synth_eval --checkpoint "$RUN/checkpoint" \
    --data-dir data/synth --stride 4 --device "${EVAL_DEVICE:-cuda}" --json "$OUT/eval_stage4.json" \
    2>/tmp/eval.err | tail -9  # (stderr: tqdm's progress bar)
  cp runs_stage4.log "$RUN/train.log"
  tar -czf /tmp/stage4.tgz --exclude=state "$RUN"
  split -b 15m -d /tmp/stage4.tgz "$OUT/stage4.tgz.part"
fi
log "done"
ls -la "$OUT"
