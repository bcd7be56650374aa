"""The web app: its operations (paths confined, bad input answered), 50 concurrent raters over loopback losing no
vote, and a real browser (Debian's chromium + chromedriver) typing a prompt, picking a candidate, getting an
image, voting, with the vote checked in SQLite."""

import json
import os
import random
import shutil
import socket
import sqlite3
import threading
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("gradio")

from promptlift.app.state import AppState, ServeConfig, UserError  # noqa: E402
from promptlift.app.votes import VoteStore  # noqa: E402
from promptlift.pipeline.stack import LIFTED_STACK  # noqa: E402
from helpers import run_cli  # noqa: E402


def _run(root, name, colour):
    """A tiny eval run: scores.jsonl + images for 3 prompts x 2 seeds."""
    run = root / name
    (run / "images").mkdir(parents=True)
    rows = []
    for i, prompt in enumerate(["two red boats at sunset", "a white ball on the beach", "three trees at night"]):
        for seed in (0, 1):
            image = f"images/{i}-s{seed}.png"
            Image.new("RGB", (64, 64), colour).save(run / image)
            rows.append({"id": str(i), "prompt": prompt, "seed": seed, "image": image, "scores": {}})
    (run / "scores.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run


@pytest.fixture
def runs(tmp_path):
    return [_run(tmp_path, "base", (90, 90, 90)), _run(tmp_path, "lifted", (200, 120, 40))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_votes_map_back_to_the_hidden_systems(tmp_path, runs):
    state = AppState(ServeConfig(runs=runs, votes_db=tmp_path / "v.sqlite", output_dir=tmp_path / "app"))
    rng = random.Random(0)
    seen_flips = set()
    for _ in range(12):
        pair = state.next_pair(0, 1, rng)
        seen_flips.add(pair["flipped"])
        lifted_side = "left" if "lifted" in pair["left"] else "right"  # the reader knows; the page does not say
        state.vote(pair, "visual appeal", lifted_side, "tester")
    assert seen_flips == {True, False}, "the order is randomised"
    table = state.votes.table(str(runs[0]), str(runs[1]))
    assert table[0]["votes"] == 12 and table[0]["win_rate"] == 0.0  # run a (base) lost every vote
    report = state.export(0, 1)
    assert report.is_file() and json.loads((report.parent / "compare.json").read_text())["win_rate"] == 0.0


def test_bad_input_and_paths_outside_the_runs_are_refused(tmp_path, runs):
    state = AppState(ServeConfig(runs=runs, votes_db=tmp_path / "v.sqlite", max_prompt_chars=20))
    with pytest.raises(UserError, match="Type a prompt"):
        state.check_prompt("   ")
    with pytest.raises(UserError, match="limit is 20"):
        state.check_prompt("x" * 21)
    with pytest.raises(UserError, match="two different runs"):
        state.next_pair(0, 0, random.Random(0))
    with pytest.raises(UserError, match="not part of these runs"):
        state.vote({"a": 0, "b": 1, "prompt": "../../etc/passwd", "seed": 0, "flipped": False}, "visual appeal", "left", "x")
    pair = state.next_pair(0, 1, random.Random(0))
    for key, value in (("seed", 0.9), ("a", 1.7), ("b", "one"), ("seed", True)):
        with pytest.raises(UserError, match=f"`{key}` must be a whole number"):  # never truncated into another seed/run
            state.vote({**pair, key: value}, "visual appeal", "left", "x")
    assert not state.votes.rows()
    state.vote({**pair, "seed": float(pair["seed"])}, "visual appeal", "left", "x")  # 3.0 is 3
    assert len(state.votes.rows()) == 1
    # a run whose scores point outside itself is never served
    evil = tmp_path / "evil"
    shutil.copytree(runs[1], evil)
    rows = [json.loads(x) for x in (evil / "scores.jsonl").read_text().splitlines()]
    for r in rows:
        r["image"] = "../../secret.png"
    (evil / "scores.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    state = AppState(ServeConfig(runs=[runs[0], evil], votes_db=tmp_path / "v.sqlite"))
    with pytest.raises(UserError, match="outside"):
        state.next_pair(0, 1, random.Random(0))
    with pytest.raises(ValueError, match="not an eval run"):
        ServeConfig(runs=[tmp_path])
    with pytest.raises(UserError, match="Unknown lift"):
        state.pipeline(("rm -rf",))
    with pytest.raises(UserError, match="No such model"):
        state.pipeline((), model=3)
    mixing = AppState(ServeConfig(votes_db=tmp_path / "v.sqlite", textcraftor=[tmp_path / "a", tmp_path / "b"]))
    assert mixing._lift_spec("textcraftor", 0.7) == f"textcraftor={tmp_path / 'a'}:0.7,{tmp_path / 'b'}:0.3"
    assert mixing._lift_spec("textcraftor", 1.0) == f"textcraftor={tmp_path / 'a'}"
    assert mixing._lift_spec("quality-tuning", 0.7) == "quality-tuning"
    # the whole stack is `--lifted`'s: the bundle's lifts with its options; a part of it, each lift's defaults
    stack = {lift.name: lift for lift in state.pipeline(LIFTED_STACK)[1]}
    assert stack["sur-adapter"].reads == "rewrite" and stack["textcraftor"].switch_step == 0
    part = {lift.name: lift for lift in state.pipeline(("sur-adapter", "textcraftor"))[1]}
    assert part["sur-adapter"].reads == "user" and part["textcraftor"].switch_step != 0


def test_review_decisions_are_read_by_quality_tuning(tmp_path, world_set):
    from promptlift.data.review import read_review

    curated = tmp_path / "curated"
    shutil.copytree(world_set, curated)
    state = AppState(ServeConfig(curated=curated, votes_db=tmp_path / "v.sqlite"))
    items = state.review_items()
    state.review(1, kept=False)
    state.review(2, kept=False)
    state.review(2, kept=True)  # the latest decision wins
    assert read_review(curated) == {items[1]["file_name"]: False, items[2]["file_name"]: True}
    assert [i["kept"] for i in state.review_items()][:3] == [True, False, True]


def test_fifty_concurrent_raters_lose_no_vote(tmp_path, runs):
    from gradio_client import Client

    from promptlift.app.server import serve

    port = _free_port()
    app = serve(ServeConfig(runs=runs, votes_db=tmp_path / "votes.sqlite", port=port), block=False)
    try:
        errors = []

        def rater(k):
            try:
                # a generous timeout: what is tested is that no vote is lost, not how fast a loaded machine answers
                client = Client(f"http://127.0.0.1:{port}/", verbose=False, httpx_kwargs={"timeout": 120})
                for j in range(4):
                    client.predict(0, 1, "two red boats at sunset", j % 2, "visual appeal", "ab"[k % 2], f"rater{k}",
                                   api_name="/vote")
            except Exception as e:  # collected: the assertion below names them
                errors.append(repr(e))

        threads = [threading.Thread(target=rater, args=(k,)) for k in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        app.close()
    assert not errors, errors[:3]
    rows = sqlite3.connect(tmp_path / "votes.sqlite").execute("SELECT rater, winner FROM votes").fetchall()
    assert len(rows) == 200 and len({r for r, _ in rows}) == 50


def test_request_bodies_over_the_cap_are_refused(tmp_path, runs):
    import httpx
    from gradio_client import Client

    from promptlift.app.server import MAX_REQUEST_BYTES, serve

    port = _free_port()
    app = serve(ServeConfig(runs=runs, votes_db=tmp_path / "votes.sqlite", port=port), block=False)
    url = f"http://127.0.0.1:{port}/gradio_api/queue/join"
    # a well-formed queue request, its prompt over the cap: without the cap the server reads it all and queues it
    body = json.dumps({"data": [0, 1, "x" * MAX_REQUEST_BYTES, 0, "visual appeal", "a", "r"], "fn_index": 0,
                       "session_hash": "s", "event_data": None, "trigger_id": None}).encode()
    try:
        declared = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
        streamed = httpx.post(url, content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                              headers={"content-type": "application/json"}, timeout=30)  # chunked: no length
        small = httpx.post(url, content=body[:1000], headers={"content-type": "application/json"}, timeout=30)
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            0, 1, "two red boats at sunset", 0, "visual appeal", "a", "rater", api_name="/vote")
    finally:
        app.close()
    assert declared.status_code == 413, declared.text[:200]
    assert streamed.status_code >= 400 and "event_id" not in streamed.text, streamed.text[:200]
    assert small.status_code == 422  # a small malformed body still reaches the app's own validation
    assert sqlite3.connect(tmp_path / "votes.sqlite").execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium/chromedriver are not installed (make setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def embedded_refiner(tmp_path_factory, world_set):
    """A refiner trained for a few steps on the embedded model (the Create page needs one)."""
    out = tmp_path_factory.mktemp("app-refiner") / "run"
    args = ["train", "refiner", "--train_data", world_set, "--output_dir", out, "--max_train_steps", 40,
            "--train_batch_size", 6, "--eval_steps", 1000, "--num_eval_prompts", 1, "--eval_inference_steps", 1,
            "--d_model", 32, "--num_decoder_layers", 1, "--diffusion_weight", 0, "--learning_rate", 3e-3,
            "--lr_warmup_steps", 0, "--checkpointing_steps", 1000]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return out / "final"


def test_browser_refine_pick_generate_vote(tmp_path, runs, browser, embedded_refiner, world_set):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from promptlift.app.server import serve

    port = _free_port()
    db = tmp_path / "votes.sqlite"
    shots = Path(os.environ.get("PROMPTLIFT_SCREENSHOTS", tmp_path))  # to look at the pages
    shots.mkdir(parents=True, exist_ok=True)
    curated = tmp_path / "curated"
    shutil.copytree(world_set, curated)
    app = serve(ServeConfig(runs=runs, votes_db=db, refiner=embedded_refiner, port=port, curated=curated,
                            output_dir=tmp_path / "app"), block=False)
    wait = WebDriverWait(browser, 240)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        box = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#prompt textarea")))
        box.send_keys("a couple of boats as the sun goes down")
        browser.find_element(By.CSS_SELECTOR, "#refine").click()
        first = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#candidates label")))
        first.click()
        refined = browser.find_element(By.CSS_SELECTOR, "#refined textarea")
        wait.until(lambda d: refined.get_attribute("value"))  # the pick is the refined prompt now
        picked = refined.get_attribute("value")
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#lifted-image img")))
        assert f"Prompt used: {picked}" in browser.find_element(By.CSS_SELECTOR, "#used-prompt").text
        browser.save_screenshot(str(shots / "create.png"))

        browser.find_element(By.CSS_SELECTOR, "button[id*='tab-rate'], #tab-rate-button").click()
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#next-pair"))).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#left img")))
        browser.find_element(By.CSS_SELECTOR, "#vote-left").click()
        wait.until(lambda d: sqlite3.connect(db).execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1)
        browser.save_screenshot(str(shots / "rate.png"))

        browser.find_element(By.CSS_SELECTOR, "button[id*='tab-review'], #tab-review-button").click()
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#review-start"))).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#review-image img")))
        browser.find_element(By.CSS_SELECTOR, "#drop").click()
        wait.until(lambda d: (curated / "review.jsonl").is_file())
        browser.save_screenshot(str(shots / "review.png"))
    finally:
        app.close()
    (rater, question, winner), = sqlite3.connect(db).execute("SELECT rater, question, winner FROM votes").fetchall()
    assert rater == "anonymous" and question == "visual appeal" and winner in ("a", "b")


def test_serve_offers_the_users_model_with_the_users_lifts(tmp_path):
    """`serve --model DIR --lift NAME=PATH`: the Create page offers those lifts on that model, and generates through
    them; a model of the user's with no lift of its own is refused when the app starts."""
    import numpy as np
    import torch

    from promptlift.pipeline import base_model_record, load_pipeline, write_base_model
    from promptlift.tiny import save_tiny_pipeline

    folder = save_tiny_pipeline("sd1", tmp_path / "sd1")
    pipe = load_pipeline(folder)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in pipe.text_encoder.named_parameters():
            if name.endswith("weight") and "_proj." in name:
                p.add_(0.3 * torch.randn_like(p))
    pipe.text_encoder.save_pretrained(tmp_path / "tc" / "text_encoder")
    write_base_model(tmp_path / "tc", base_model_record(load_pipeline(folder)))
    (tmp_path / "tc" / "textcraftor.json").write_text('{"switch_step": 0}')
    with pytest.raises(ValueError, match=r"`--model .*sd1` needs lifts trained on it.* `--lift NAME=PATH`"):
        ServeConfig(model=[str(folder)], votes_db=tmp_path / "v.sqlite")
    state = AppState(ServeConfig(model=[str(folder)], lift=[f"textcraftor={tmp_path / 'tc'}"],
                                 votes_db=tmp_path / "v.sqlite", output_dir=tmp_path / "app"))
    assert state.available_lifts == ("textcraftor",)
    base, lifted, settings = state.generate("two red boats at sunset", ("textcraftor",), seed=3, steps=2)
    assert np.abs(np.asarray(base, dtype=float) - np.asarray(lifted, dtype=float)).max() > 5
    with pytest.raises(UserError, match="Unknown lift 'sur-adapter'; choose from textcraftor"):
        state.generate("two red boats at sunset", ("sur-adapter",), seed=3, steps=2)


def test_the_create_pages_default_is_generate_lifted_bitwise(tmp_path):
    """The Create page's defaults (every lift ticked, TextCraftor's alpha at the stack's) give `promptlift generate
    --lifted`'s image, bit for bit, and its downloaded settings are that image's sidecar."""
    import numpy as np

    prompt = "a couple of boats as the sun goes down"
    state = AppState(ServeConfig(votes_db=tmp_path / "v.sqlite", output_dir=tmp_path / "app"))
    assert state.available_lifts == LIFTED_STACK
    _, lifted, settings = state.generate(prompt, state.available_lifts, seed=0, steps=3, alpha=state.stack_alpha)
    result = run_cli("generate", "--lifted", prompt, "--seed", 0, "--num_inference_steps", 3,
                     "--output_dir", tmp_path / "cli")
    assert result.exit_code == 0, result.output
    png, = (tmp_path / "cli").glob("*.png")
    np.testing.assert_array_equal(np.asarray(lifted), np.asarray(Image.open(png).convert("RGB")))
    sidecar = json.loads(png.with_suffix(".json").read_text())
    downloaded = json.loads(Path(state.save_download(lifted, settings)[1]).read_text())
    assert set(downloaded) == set(sidecar)
    for key in set(sidecar) - {"timings"}:
        assert downloaded[key] == sidecar[key], key
