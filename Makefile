# promptlift: `make demo` sets everything up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; on a CUDA machine: make TORCH="torch" setup
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test clean

$(BIN)/.installed: pyproject.toml
	@# the web app's browser tests drive Debian's chromium through chromedriver (as root, apt-get works here)
	@if ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; \
		else echo "note: chromium + chromedriver missing; the browser tests will be skipped"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,metrics]"
	touch $@

setup: $(BIN)/.installed

# The main job, offline: the embedded default model (src/promptlift/bundle/pipeline) with the whole lifted stack,
# beside the base model on the same prompts and seeds (outputs/demo/sheet.png).
demo: setup
	$(BIN)/promptlift generate --lifted --compare_base "two red boats at sunset" "a lone white tree in the snow" \
		"Picture a lone sphere the color of a grape by the seaside." \
		"Someone spotted a solitary lavender round plaything where the waves meet the sand." \
		--num_images_per_prompt 2 --output_dir outputs/demo

# pytest exits 5 when it collects no test: that is a broken suite, not a pass.
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .cache outputs
