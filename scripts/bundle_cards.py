"""Write lift_config.json (the lift's type, options and base model) and a model card (README.md) into each lift
folder of the embedded bundle.

    .venv/bin/python scripts/bundle_cards.py

The bundle's lifts were trained on the embedded model; their recipe.yaml and eval.json are the ones their runs wrote.
"""

import json

from promptlift.pipeline.cards import write_model_card
from promptlift.methods import METHODS
from promptlift.pipeline import base_model_record, load_pipeline
from promptlift.pipeline.lift_config import read_lift_config, recorded_options, write_lift_config


def main() -> None:
    pipe = load_pipeline(dtype="float32", device="cpu")
    base = base_model_record(pipe)
    for method, spec in METHODS.items():
        folder = spec.bundle_weights
        if folder is None or not folder.is_dir():
            continue
        metrics = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
        recipe = (folder / "recipe.yaml").read_text() if (folder / "recipe.yaml").is_file() else None
        kept = (read_lift_config(folder) or {}).get("options") or {}  # those its run recorded
        write_lift_config(folder, method, base, {**recorded_options(method, folder), **kept})
        write_model_card(folder, method, base, metrics, recipe)
        print(f"{method}: {folder}")


if __name__ == "__main__":
    main()
