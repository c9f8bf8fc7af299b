#!/usr/bin/env bash
# One leased-GPU session, run from the repository root (python3 = the machine's CUDA torch):
#   1. GPU tests (tests/test_gpu.py), 2. the real-size speed benchmark (benchmarks/gpu_edit.py),
#   3. a synth training stage (STAGE of configs/recipes/synth_teacher.json, with the data it reads) sized to the
#   time left, 4. a quick GPU evaluation.
# Everything it keeps lands in $OUT (at most 8 files). The whole script stops itself by BUDGET_S.
# STEPS=N skips the calibration; SKIP_TESTS / SKIP_BENCH / SKIP_EVAL=1 skip those parts.
set -u
OUT=${OUT:-/tmp/gpu_session_out}
BUDGET_S=${BUDGET_S:-540}
STAGE=${STAGE:-4}
RECIPE=configs/recipes/synth_teacher.json
CONFIG=/tmp/stage_recipe.json  # the stage's merged config
INIT=${INIT:-checkpoints/synth}  # the checkpoint the stage continues from (the recipe names the previous run's)
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
python3 -m reasonbrain.training.recipe show "$RECIPE" --stage "$STAGE" > "$CONFIG" || exit 1
python3 -m reasonbrain.training.recipe data "$RECIPE" --stage "$STAGE" --no-progress 2>&1 | tail -8

log "gpu tests"
[ -n "${SKIP_TESTS:-}" ] || timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_reason_then_edit.py 2>&1 | tail -15

if [ -z "${STEPS:-}" ]; then
log "calibration: 60 steps"
python3 - "$CONFIG" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
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
fi

if [ -z "${SKIP_BENCH:-}" ]; then
log "benchmark"
timeout "${BENCH_TIMEOUT:-180}" python3 benchmarks/gpu_edit.py ${BENCH_ARGS:---presets reasonbrain-3b reasonbrain-7b --steps 20 50 --repeats 3} --json-out "$OUT/gpu_edit.json" \
  > "$OUT/gpu_edit.log" 2>&1
log "benchmark rc=$?"
tail -60 "$OUT/gpu_edit.log"
fi

EVAL_RESERVE=${EVAL_RESERVE:-75}
if [ -n "${STEPS:-}" ]; then
  log "stage: $STEPS steps (given)"
elif [ "$CALIB_RC" = 0 ]; then
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
  log "stage: $STEPS steps"
fi
RUN=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['output_dir'])" "$CONFIG")
NAME=$(basename "$RUN")
if [ "${STEPS:-0}" -ge 200 ]; then
    # the loop stops itself (saving) at --max-wall-time-s; timeout is only the backstop
    python3 -c "import json, sys; c = json.load(open(sys.argv[1])); c['stop_after_steps'] = None; \
json.dump(c, open('/tmp/stage.json', 'w'))" "$CONFIG"  # sized here instead of by the recorded recipe's stop
    rm -rf "$RUN"  # a warm machine keeps the last call's files
    # the cap counts the loop only: start-up (~20 s) and the final validation + save (~10 s) come on top
    timeout $(( $(left) - 10 )) python3 -m reasonbrain.training.train --config /tmp/stage.json \
      --init-checkpoint "$INIT" --max-steps "$STEPS" --max-wall-time-s $(( $(left) - EVAL_RESERVE - 60 )) \
      > "$NAME.log" 2>&1
    log "$NAME rc=$?"
    grep -E "validation|Error|error|stopping" "$NAME.log" | tail -8
fi

if [ -d "$RUN/checkpoint" ]; then
  cp "$NAME.log" "$RUN/train.log"
  tar -czf "/tmp/$NAME.tgz" --exclude=state "$RUN"
  split -b 15m -d "/tmp/$NAME.tgz" "$OUT/$NAME.tgz.part"
  if [ -z "${SKIP_EVAL:-}" ]; then
    log "evaluation"
    timeout $(( $(left) - 10 )) python3 -m reasonbrain.evaluation.synth_eval --checkpoint "$RUN/checkpoint" \
      --data-dir data/synth --stride 4 --device "${EVAL_DEVICE:-cuda}" --json "$OUT/eval_$NAME.json" \
      2>/tmp/eval.err | tail -9  # (stderr: tqdm's progress bar)
  fi
fi
log "done"
ls -la "$OUT"
