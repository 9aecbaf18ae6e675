# Model targets (network, training, export, evaluation). Included from the top-level Makefile.
#   make train  [MODEL_CONFIG=configs/small.json RUN=runs/small MINUTES=35 DEVICE=cuda]
#   make export [CHECKPOINT=runs/small/last.pt] [EXPORT_ARGS="--deblock off"]
#   make quantize          (model.onnx -> model_int8.onnx + weights/sllen_small.int8.json)
#   make export-ablation   (checkpoints/gpu_small_nosem/last.pt -> runs/ablation/model.onnx)
#   make eval   [EVAL_ARGS='--model new=runs/small/model.onnx']
#   make checkpoint-save   (runs/<name>/last.pt -> checkpoints/<name>/last.pt, committed)
#   make test-model

PY ?= .venv/bin/python
MODEL_CONFIG ?= configs/small.json
RUN_NAME ?= $(basename $(notdir $(MODEL_CONFIG)))
RUN ?= runs/$(RUN_NAME)
MINUTES ?=
DEVICE ?=
# A fresh RUN continues from the small committed checkpoint of the same name, if any.
RESUME_FROM ?= checkpoints/$(RUN_NAME)/last.pt
CHECKPOINT ?= $(RUN)/last.pt
ONNX_OUT ?= model_repository/sllen/1/model.onnx
EVAL_ARGS ?=
# The served graph carries the 8x8 deblocking filter (sllen/deblock.py) whatever the network
# was trained with; it has no parameters.
EXPORT_ARGS ?= --deblock adaptive

.PHONY: train train-fg export export-ablation export-untrained quantize eval checkpoint-save test-model

TRAIN_ARGS = --config $(MODEL_CONFIG) --out $(RUN) --resume-from $(RESUME_FROM) \
	$(if $(MINUTES),--minutes $(MINUTES)) $(if $(DEVICE),--device $(DEVICE))

## train: start (or resume) training in the background; logs to $(RUN)/train.log
train:
	@mkdir -p $(RUN)
	@nohup $(PY) -m sllen.train $(TRAIN_ARGS) > $(RUN)/nohup.out 2>&1 < /dev/null & \
		echo $$! > $(RUN)/train.pid; \
		echo "training in background, pid $$(cat $(RUN)/train.pid)"; \
		echo "follow: tail -f $(RUN)/train.log   stop: kill $$(cat $(RUN)/train.pid)"; \
		echo "resume: 'make train' again with the same RUN (from $(RUN)/last.pt, else $(RESUME_FROM));"; \
		echo "        a finished run needs a larger MINUTES to continue"

## train-fg: the same in the foreground
train-fg:
	@mkdir -p $(RUN)
	$(PY) -m sllen.train $(TRAIN_ARGS)

## export: checkpoint (EMA weights) -> checked ONNX in the model repository (+ weights/)
export:
	$(PY) -m sllen.export --checkpoint $(CHECKPOINT) --out $(ONNX_OUT) $(EXPORT_ARGS)

## quantize: int8 twin of the exported model (model_int8.onnx) with its PSNR cost and speed-up
quantize:
	$(PY) -m sllen.studies.quantize --model $(ONNX_OUT)

## export-ablation: the no-HSF/IEF ablation (same recipe as the served model) -> runs/ablation/
ABLATION_CHECKPOINT ?= checkpoints/gpu_small_nosem/last.pt
export-ablation:
	$(PY) -m sllen.export --checkpoint $(ABLATION_CHECKPOINT) \
		--out runs/ablation/model.onnx --weights-dir runs/ablation/weights

## export-untrained: random-weight default variant (for wiring tests only)
export-untrained:
	$(PY) -m sllen.export --variant small --out $(ONNX_OUT)

## eval: committed ONNX (+ ablation if exported) vs baselines; markdown + runs/eval/latest.json
eval:
	$(PY) -m sllen.evaluate $(EVAL_ARGS)

## checkpoint-save: copy the resumable checkpoint of RUN into checkpoints/ (for git)
checkpoint-save:
	@mkdir -p checkpoints/$(RUN_NAME)
	cp $(RUN)/last.pt checkpoints/$(RUN_NAME)/last.pt
	cp $(RUN)/config.json checkpoints/$(RUN_NAME)/config.json

## test-model: network, data, training, evaluation and export tests
test-model:
	$(PY) -m pytest tests/model -q -p no:cacheprovider
