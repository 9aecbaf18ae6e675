# Model targets (network, training, export). Included from the top-level Makefile.
#   make train  [MODEL_CONFIG=configs/small.json RUN=runs/small MINUTES=35]
#   make export [CHECKPOINT=runs/small/last.pt]
#   make test-model

PY ?= .venv/bin/python
MODEL_CONFIG ?= configs/small.json
RUN ?= runs/$(basename $(notdir $(MODEL_CONFIG)))
MINUTES ?=
CHECKPOINT ?= $(RUN)/last.pt
ONNX_OUT ?= model_repository/sllen/1/model.onnx

.PHONY: train train-fg export export-untrained test-model

## train: start (or resume) training in the background; logs to $(RUN)/train.log
train:
	@mkdir -p $(RUN)
	@nohup $(PY) -m sllen.train --config $(MODEL_CONFIG) --out $(RUN) \
		$(if $(MINUTES),--minutes $(MINUTES)) > $(RUN)/nohup.out 2>&1 < /dev/null & \
		echo $$! > $(RUN)/train.pid; \
		echo "training in background, pid $$(cat $(RUN)/train.pid)"; \
		echo "follow: tail -f $(RUN)/train.log   stop: kill $$(cat $(RUN)/train.pid)"; \
		echo "resume: run 'make train' again with the same RUN (continues from $(RUN)/last.pt)"

## train-fg: the same in the foreground
train-fg:
	@mkdir -p $(RUN)
	$(PY) -m sllen.train --config $(MODEL_CONFIG) --out $(RUN) $(if $(MINUTES),--minutes $(MINUTES))

## export: checkpoint (EMA weights) -> checked ONNX in the model repository
export:
	$(PY) -m sllen.export --checkpoint $(CHECKPOINT) --out $(ONNX_OUT)

## export-untrained: random-weight default variant (for wiring tests only)
export-untrained:
	$(PY) -m sllen.export --variant small --out $(ONNX_OUT)

## test-model: network, data, training and export tests
test-model:
	$(PY) -m pytest tests/model -q -p no:cacheprovider
