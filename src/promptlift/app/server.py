"""`promptlift serve`: the Gradio app over `AppState` — Create, Rate and Review pages.

Errors from bad input reach the page as a message (`gr.Error`), never as a stack trace; the app binds
127.0.0.1 unless `--host` says otherwise, and serves files only from the run folders it was given.
"""

from __future__ import annotations

import functools
import logging
import random
from pathlib import Path

from .state import AppState, ServeConfig, UserError
from .votes import QUESTIONS

__all__ = ["build_app", "serve"]

CSS = ("#base-image img, #lifted-image img, #left img, #right img, #review-image img "
       "{image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain}")


def _page_errors(fn):
    """Turn UserError (and any other failure) into a message on the page."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:  # the user's to fix: shown on the page, one line in the log
            logging.getLogger("promptlift.app").info("refused: %s", e)
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # the page shows a short message; the server log keeps the details
            logging.getLogger("promptlift.app").exception("request failed")
            raise gr.Error(f"Something went wrong ({type(e).__name__}); the server log has the details.") from None

    return wrapped


def _create_tab(gr, state: AppState) -> None:
    """Create: refine-and-pick, base vs lifted for one seed, progress, cancel, download."""
    with gr.Tab("Create", elem_id="tab-create"):
        prompt = gr.Textbox(label="Your prompt", placeholder="a couple of boats as the sun goes down",
                            max_length=state.cfg.max_prompt_chars, elem_id="prompt")
        refined = gr.Textbox(label="Refined prompt (edit freely)", elem_id="refined")
        with gr.Row():
            refine_btn = gr.Button("Suggest 3 refinements", elem_id="refine")
            candidates = gr.Radio(label="Pick one (then suggest again to extend it)", choices=[], elem_id="candidates")
        with gr.Row():
            model = gr.Dropdown([f"{i}: {m}" for i, m in enumerate(state.models)], value=f"0: {state.models[0]}",
                                label="Model", elem_id="model")
            mix = gr.Slider(0, 1, value=1, step=0.1, label="TextCraftor encoder mix (1 = first run, 0 = second)",
                            visible=len(state.cfg.textcraftor) > 1)
        with gr.Row():
            lifts = gr.CheckboxGroup(list(state.available_lifts), label="Lifts (the refiner is skipped once you picked "
                                     "a refined prompt)", value=list(state.available_lifts), elem_id="lifts")
            alpha = gr.Slider(0, 1, value=state.stack_alpha, step=0.05, label="TextCraftor alpha (0 = base, 1 = tuned)")
            seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
            steps = gr.Slider(1, state.cfg.max_steps, value=25, step=1, label="Steps")
        with gr.Row():
            go = gr.Button("Generate", variant="primary", elem_id="generate")
            stop = gr.Button("Cancel", elem_id="cancel")
        with gr.Row():
            base_img = gr.Image(height=320, label="Base model", type="pil", elem_id="base-image")
            lifted_img = gr.Image(height=320, label="Lifted", type="pil", elem_id="lifted-image")
        used = gr.Markdown(elem_id="used-prompt")
        files = gr.File(label="Download (image + settings)", file_count="multiple", elem_id="download")
        round_seed = gr.State(0)

        @_page_errors
        def on_refine(text, prefix, r):
            options = state.refine_round(text, prefix, seed=int(r))
            return gr.update(choices=options, value=None), int(r) + 1

        refine_btn.click(on_refine, [prompt, refined, round_seed], [candidates, round_seed], concurrency_id="model",
                         concurrency_limit=1)
        candidates.change(lambda c, cur: c if c else cur, [candidates, refined], refined)

        @_page_errors
        def on_generate(text, refined_text, model_name, m, lift_names, a, s, n, progress=gr.Progress()):
            used_prompt = (refined_text or "").strip() or text
            names = tuple(name for name in lift_names or () if name != "refiner" or used_prompt == text)
            total = 2 * int(n)
            done = [0]

            def tick(_step):
                done[0] += 1
                progress(done[0] / total, desc="denoising")

            base, lifted, settings = state.generate(used_prompt, names, int(s or 0), int(n),
                                                    float(a), on_step=tick, model=int(str(model_name).split(":")[0]),
                                                    mix=float(m))
            settings["user_prompt"] = text
            used_prompt = settings["prompt_used"]
            shown = f"**Prompt used:** {used_prompt}" + ("" if used_prompt == text else f"  \n(you typed: {text})")
            return base, lifted, shown, state.save_download(lifted, settings)

        event = go.click(on_generate, [prompt, refined, model, mix, lifts, alpha, seed, steps],
                         [base_img, lifted_img, used, files], concurrency_id="model", concurrency_limit=1)
        stop.click(None, None, None, cancels=[event])


def _rate_tab(gr, state: AppState) -> None:
    """Rate: blind pairs from two eval runs, votes, the live win-rate table, export."""
    run_names = [f"{i}: system {i + 1}" for i in range(len(state.runs))]  # blind: folders are never named
    with gr.Tab("Rate", elem_id="tab-rate"):
        gr.Markdown("Two images of the same prompt and seed from two systems, in random order. Which is better?")
        with gr.Row():
            run_a = gr.Dropdown(run_names, label="System 1", value=run_names[0] if run_names else None)
            run_b = gr.Dropdown(run_names, label="System 2", value=run_names[1] if len(run_names) > 1 else None)
            rater = gr.Textbox(label="Your name (optional)", max_length=64, elem_id="rater")
        next_btn = gr.Button("Next pair", elem_id="next-pair")
        pair_prompt = gr.Markdown(elem_id="pair-prompt")
        with gr.Row():
            left = gr.Image(height=320, label="Left", type="filepath", elem_id="left")
            right = gr.Image(height=320, label="Right", type="filepath", elem_id="right")
        question = gr.Radio(list(QUESTIONS), value=QUESTIONS[0], label="Question", elem_id="question")
        with gr.Row():
            vote_left = gr.Button("Left is better", elem_id="vote-left")
            vote_tie = gr.Button("Tie", elem_id="vote-tie")
            vote_right = gr.Button("Right is better", elem_id="vote-right")
        table = gr.Dataframe(headers=["question", "votes", "win rate of system 1", "95 % CI"], elem_id="win-table")
        export_btn = gr.Button("Export report")
        export_out = gr.File(label="Report")
        pair = gr.State({})
        rng = random.Random()

        def index(name):
            if not name:
                raise UserError("Choose two runs.")
            return int(str(name).split(":", 1)[0])

        @_page_errors
        def on_next(a, b):
            p = state.next_pair(index(a), index(b), rng)
            return p, p["left"], p["right"], f"**Prompt:** {p['prompt']}", state.win_table(p["a"], p["b"])

        next_btn.click(on_next, [run_a, run_b], [pair, left, right, pair_prompt, table])

        for button, choice in ((vote_left, "left"), (vote_tie, "tie"), (vote_right, "right")):
            @_page_errors
            def on_vote(p, q, who, a, b, choice=choice):
                state.vote(p, q, choice, who)
                return on_next(a, b)

            button.click(on_vote, [pair, question, rater, run_a, run_b], [pair, left, right, pair_prompt, table])

        @_page_errors
        def on_export(a, b, q):
            return str(state.export(index(a), index(b), q))

        export_btn.click(on_export, [run_a, run_b, question], export_out)

        @_page_errors
        def vote_api(a: int, b: int, prompt: str, seed: int, question: str, winner: str, rater: str) -> str:
            """A vote sent by a program (scripts, the load test): winner is 'a', 'b' or 'tie' for runs a, b."""
            if winner not in ("a", "b", "tie"):
                raise UserError("winner must be 'a', 'b' or 'tie'.")
            choice = {"a": "left", "b": "right", "tie": "tie"}[winner]
            state.vote({"a": a, "b": b, "prompt": prompt, "seed": seed, "flipped": False}, question, choice, rater)
            return "ok"

        gr.api(vote_api, api_name="vote")


def _review_tab(gr, state: AppState) -> None:
    """Review: keep/drop over the curated set (review.jsonl)."""
    with gr.Tab("Review", elem_id="tab-review"):
        gr.Markdown("Keep or drop each curated image; quality-tuning leaves out what you drop (review.jsonl).")
        position = gr.State(0)
        review_img = gr.Image(height=320, type="filepath", label="Curated image", elem_id="review-image")
        review_caption = gr.Markdown(elem_id="review-caption")
        with gr.Row():
            keep = gr.Button("Keep", elem_id="keep")
            drop = gr.Button("Drop", elem_id="drop")
            load = gr.Button("Start / refresh", elem_id="review-start")

        @_page_errors
        def show(i):
            items = state.review_items()
            if not items:
                raise UserError("The curated set is empty.")
            i = int(i) % len(items)
            item = items[i]
            status = "kept" if item["kept"] else "dropped"
            return i, item["path"], f"{i + 1}/{len(items)} · {item['caption']} · currently **{status}**"

        load.click(show, position, [position, review_img, review_caption])
        for button, kept in ((keep, True), (drop, False)):
            @_page_errors
            def on_review(i, kept=kept):
                state.review(int(i), kept)
                return show(int(i) + 1)

            button.click(on_review, position, [position, review_img, review_caption])


def build_app(state: AppState):
    """The three pages over one `AppState`."""
    import gradio as gr

    with gr.Blocks(title="promptlift") as app:
        gr.Markdown("# promptlift")
        _create_tab(gr, state)
        _rate_tab(gr, state)
        _review_tab(gr, state)
    return app


MAX_UPLOAD = "1mb"  # no page takes a file; Gradio's upload route stays capped so it cannot fill the disk
MAX_REQUEST_BYTES = 1 << 20  # a page's request is a prompt and a few numbers: any body over 1 MiB is refused


class BodyLimit:
    """ASGI middleware: answer 413 to a request whose declared body is over `max_bytes`, and end one that streams
    more than that (chunked, no length) as a client disconnect, so the server never holds more than `max_bytes`."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]})
            return await send({"type": "http.response.body", "body": f"request body over {self.max_bytes} bytes".encode()})
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return {"type": "http.disconnect"} if received > self.max_bytes else message

        await self.app(scope, limited, send)


def serve(cfg: ServeConfig, block: bool = True):
    """Build and launch the app; returns it (with `block=False`, e.g. for tests: call `.close()` after)."""
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise ImportError("the web app needs Gradio: pip install 'promptlift[app]'") from e
    from starlette.middleware import Middleware

    state = AppState(cfg)
    app = build_app(state)
    app.queue(default_concurrency_limit=16)  # votes and pages in parallel; the model runs one request at a time
    allowed = [str(Path(p).resolve()) for p in [*state.runs, cfg.output_dir, *( [cfg.curated] if cfg.curated else [])]]
    app.launch(server_name=cfg.host, server_port=cfg.port, allowed_paths=allowed, prevent_thread_lock=not block,
               show_error=True, quiet=True, css=CSS, max_file_size=MAX_UPLOAD,
               app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES)]})
    return app
