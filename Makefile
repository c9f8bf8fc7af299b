# `make app` and `make test` create .venv on first use (CPU install, torch pinned by constraints-cpu.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test test-all install clean lint params bench synth-checkpoint synth-teacher synth-reader

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
# on a GPU), export with model card (the stage-9 teacher), then the reading phase (`synth-reader`) put into it
# with its free-form figures, the inferred-outcome adapter attached, then the VAE decoder refined where edits happen
# and shipped the same way (the reading recipe's last steps).
synth-checkpoint: synth-teacher synth-reader
	$(BIN)/python -m reasonbrain.training.recipe run configs/recipes/synth_reader.json --from-step reading-phase

# The teacher as configs/recipes/synth_teacher.json lists it: data, the nine stages (a finished one is skipped, a
# stopped one resumed), export with model card.
synth-teacher: $(STAMP)
	$(BIN)/python -m reasonbrain.training.recipe run configs/recipes/synth_teacher.json

# The reading phase as configs/recipes/synth_reader.json lists it, from the stage-9 teacher
# (runs/synth_stage9/checkpoint, data/synth): the text side distilled into an InstructionReader (MLP into the MLLM
# space), then refined with the frozen UNet's predictions in the loss (a finished distillation stage is skipped, a
# stopped one resumed); the scene recogniser on the second stage's chosen step (the recipe's about: step 1500, chosen
# on the validation split); the validation-split check; the free-form benchmark; the inferred-outcome adapter and
# its held-out figures (a step whose output exists is skipped).
synth-reader: $(STAMP)
	$(BIN)/python -m reasonbrain.training.recipe run configs/recipes/synth_reader.json --to-step outcome-eval
