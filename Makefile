# `make app` and `make test` create .venv on first use (CPU install, torch pinned by constraints-cpu.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test test-all install clean lint params bench synth-checkpoint synth-reader

$(STAMP): requirements.txt requirements-dev.txt constraints-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints-cpu.txt -r requirements-dev.txt
	$(BIN)/pip install -q -c constraints-cpu.txt --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	$(BIN)/python -m app

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

params: $(STAMP)
	$(BIN)/python -m reasonbrain params

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py

lint: $(STAMP)
	$(BIN)/ruff check reasonbrain app tests benchmarks

clean:
	rm -rf $(VENV)

# Rebuild the bundled default checkpoint: data (+ 160,000 extra training samples, seeds 1 to 3), training
# (VAE pre-training + main phase, then eight continuation phases; stages 4, 7 and 9 are batch 128 and were run
# on a GPU), export with model card. `make synth-reader` then builds the reading-phase candidate (issue 18; not
# the bundled default yet).
synth-checkpoint: $(STAMP)
	$(BIN)/python -m reasonbrain synthworld --n 20000 --out data/synth --seed 0
	$(BIN)/python -m reasonbrain synthworld --n 40000 --out data/synth_extra --seed 1 --split-fractions 1 0 0 \
		--chains 0
	$(BIN)/python -m reasonbrain synthworld --n 60000 --out data/synth_extra2 --seed 2 --split-fractions 1 0 0 \
		--chains 0
	$(BIN)/python -m reasonbrain synthworld --n 60000 --out data/synth_extra3 --seed 3 --split-fractions 1 0 0 \
		--chains 0
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage2.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage3.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage4.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage5.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage6.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage7.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage8.json
	$(BIN)/python -m reasonbrain.training.train --config configs/train_synth_stage9.json
	$(BIN)/python tools/export_synth_checkpoint.py --run runs/synth_stage9 --previous-run runs/synth \
		--previous-run runs/synth_stage2 --previous-run runs/synth_stage3 --previous-run runs/synth_stage4 \
		--previous-run runs/synth_stage5 --previous-run runs/synth_stage6 --previous-run runs/synth_stage7 \
		--previous-run runs/synth_stage8 \
		--data-dir data/synth --out checkpoints/synth --ablation reports/synth-ablation

# The reading-phase candidate from the bundled stage-9 model (checkpoints/synth, data/synth from synth-checkpoint):
# the text side distilled into an InstructionReader (MLP into the MLLM space), the scene recogniser (half of its
# renders through the VAE), the validation-split check, the free-form benchmark and the inferred-outcome adapter.
synth-reader: $(STAMP)
	$(BIN)/python -m reasonbrain.training.distill_reader --config configs/distill_synth_reader_mlp.json --resume
	$(BIN)/python -m reasonbrain.training.train_recogniser --checkpoint runs/synth_reader_mlp/checkpoint \
		--out runs/synth_reader_mlp/candidate --epochs 5 --vae-share 0.5
	$(BIN)/python tools/select_reader_checkpoint.py runs/synth_reader_mlp/candidate --stride 6
	$(BIN)/python benchmarks/freeform_eval.py --checkpoint runs/synth_reader_mlp/candidate \
		--json-out runs/synth_reader_mlp/freeform.json
	$(BIN)/python -m reasonbrain.training.train_outcome --checkpoint runs/synth_reader_mlp/candidate \
		--out runs/synth_reader_mlp/candidate-outcome --resume
	$(BIN)/python benchmarks/outcome_eval.py --checkpoint runs/synth_reader_mlp/candidate-outcome --limit 400
