"""Write base_model.json and a model card (README.md) into each lift folder of the embedded bundle.

    .venv/bin/python scripts/bundle_cards.py

The bundle's lifts were trained on the embedded model; their recipe.yaml and eval.json are the ones their runs wrote.
"""

import json

from promptlift.export.cards import write_model_card
from promptlift.judges.bundle import BUNDLE_DIR
from promptlift.methods import LIFTED_WEIGHTS, METHODS
from promptlift.pipeline import base_model_record, load_pipeline, write_base_model


def main() -> None:
    pipe = load_pipeline(dtype="float32", device="cpu")
    base = base_model_record(pipe)
    folders = {name: spec.bundle_weights for name, spec in METHODS.items()}
    folders.update({f"{name} (stack)": BUNDLE_DIR / folder for name, folder in LIFTED_WEIGHTS.items()})
    for label, folder in folders.items():
        if folder is None or not folder.is_dir():
            continue
        method = label.split(" ")[0]
        metrics = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
        recipe = (folder / "recipe.yaml").read_text() if (folder / "recipe.yaml").is_file() else None
        write_base_model(folder, base)
        write_model_card(folder, method, base, metrics, recipe)
        print(f"{label}: {folder}")


if __name__ == "__main__":
    main()
