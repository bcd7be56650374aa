"""Write docs/comfyui/: the example workflow (promptlift.comfyui.workflow) in ComfyUI's API format, in its UI format
as ComfyUI's own page lays it out, and a screenshot of that page (headless Chromium through selenium, on a local
ComfyUI server with the node pack installed).

    .venv/bin/python scripts/comfyui_workflow.py [--comfyui ../shared/peers/comfyui] [--python .venv-comfyui/bin/python]

Nothing is generated: the files the workflow names are empty stand-ins, there only for ComfyUI's file lists.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from promptlift.comfyui.server import ComfyUIServer, copy_comfyui
from promptlift.comfyui.workflow import example_workflow
from promptlift.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT, LORA = "v1-5-pruned-emaonly.safetensors", "quality-tuning.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", type=Path, default=ROOT.parent / "shared" / "peers" / "comfyui")
    parser.add_argument("--python", type=Path, default=ROOT / ".venv-comfyui" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "comfyui")
    args = parser.parse_args()
    graph = example_workflow(CHECKPOINT, "runs/refiner/best", "runs/sur-adapter/best", "runs/textcraftor/best",
                             "a couple of boats as the sun goes down", LORA)
    atomic_write_json(args.out / "promptlift-workflow-api.json", graph)
    with tempfile.TemporaryDirectory() as tmp:
        comfyui = copy_comfyui(args.comfyui, Path(tmp) / "ComfyUI")
        subprocess.run([str(args.python), "-m", "promptlift", "comfyui", "install", str(comfyui)], check=True)
        for folder, name in (("checkpoints", CHECKPOINT), ("loras", LORA)):  # stand-ins for the file lists
            (comfyui / "models" / folder).mkdir(parents=True, exist_ok=True)
            (comfyui / "models" / folder / name).write_bytes(b"")
        with ComfyUIServer(comfyui, args.python, env={**os.environ, "HF_HUB_OFFLINE": "1"}) as url:
            ui = screenshot(url, graph, args.out / "workflow.png")
    atomic_write_json(args.out / "promptlift-workflow.json", ui)
    print(f"wrote {args.out}/promptlift-workflow-api.json, promptlift-workflow.json and workflow.png")


def screenshot(url: str, graph: dict, path: Path) -> dict:
    """Load `graph` into ComfyUI's page (its own loader of API-format workflows), save a screenshot, return the UI
    format the page holds."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1900,1150"):
        options.add_argument(flag)
    # a first visit opens the templates dialog over the graph; the minimap covers a corner of it
    for setting, value in (("Comfy.TutorialCompleted", b"true"), ("Comfy.Minimap.Visible", b"false")):
        urllib.request.urlopen(urllib.request.Request(f"{url}/settings/{setting}", data=value, method="POST"))
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        deadline = time.time() + 120
        while not driver.execute_script("return !!(window.app && window.app.graph && window.app.canvas)"):
            if time.time() > deadline:
                raise TimeoutError("ComfyUI's page did not load its graph in 120 s")
            time.sleep(1)
        time.sleep(3)  # the node definitions and the first draw
        driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                    "Promise.resolve(window.app.loadApiJson(arguments[0], 'promptlift-workflow.json'))"
                                    ".then(() => done())", graph)
        time.sleep(2)
        driver.execute_script("const c = window.app.canvas; c.ds.scale = 0.6; c.ds.offset = [10, 40];"
                              "c.setDirty(true, true); c.draw(true, true);")
        time.sleep(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
        return json.loads(driver.execute_script("return JSON.stringify(window.app.graph.serialize())"))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
