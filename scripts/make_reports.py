"""Write the report pages under docs/reports/ from the results files the measuring scripts write.

    .venv/bin/python scripts/make_reports.py            # write the pages
    .venv/bin/python scripts/make_reports.py --check    # exit 1 when a committed page differs from what it would write

Sources: the embedded bundle's card.json (the recipe's `measure` part and each method's bundle run), the memory
model's measured steps (src/promptlift/memory/measured.jsonl, `promptlift memory calibrate`), benchmarks/results/*.json
(`promptlift eval --system --results`, `research/teacher_probe.py --results`, `benchmarks/peer_lora_speed.py`) and the
hand-written reading of them beside (benchmarks/results/*-notes.md). Every table names the file it comes from; every
page names the date, commit, command and machine of its results, or where the file's commits are listed. A number
that is no longer true is re-measured into its results file, never edited here or in the page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "src" / "promptlift" / "bundle" / "card.json"
MEASURED = ROOT / "src" / "promptlift" / "memory" / "measured.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ROOT / "docs" / "reports"
README = ROOT / "README.md"
HEADLINE = RESULTS / "narrative-15-report-stack-lm.json"  # the README's one results table
MARKS = ("<!-- results:start -->\n", "<!-- results:end -->")
ATTRIBUTES = ("setting", "kind", "color", "count", "all")
HEAD = "<!-- written by scripts/make_reports.py from the results files it names; edit those, not this page -->\n\n"


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def interval(ci: list[float] | None, signed: bool = False) -> str:
    """A 95 % interval in %: " (a-b)", or " (+a, +b)" for differences that may be negative."""
    if not ci:
        return ""
    return f" ({100 * ci[0]:+.1f}, {100 * ci[1]:+.1f})" if signed else f" ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def git_origin(path: Path) -> str:
    """Where the file's commits are listed (a page naming the hash of the file's last commit would be stale the
    moment it is committed with the file)."""
    rel = path.relative_to(ROOT)
    return f"the commits that wrote it: `git log -- {rel}`"


def run_line(run: dict) -> str:
    m = run["machine"]
    machine = m.get("gpu") or f"{m['cpus']}-core {m['cpu']} CPU, {m['torch_threads']} torch threads, {m['memory_gib']} GiB"
    if m.get("processes", 1) > 1:
        machine += f", {m['processes']} processes"
    return f"{run['date']}, commit {run['commit']}, `{run['command']}`, on {machine} (torch {m['torch']})"


# ---------------------------------------------------------------------------------------------------------------
# pages


def bundle_page(card: dict) -> str:
    m = card["measure"]
    sets = [("complex (with quality keywords)", m["quality_keywords"]["with_quality_keywords"]),
            ("complex without its quality keywords", m["quality_keywords"]["without_quality_keywords"]),
            *[(name, m["prompt_sets"][name]) for name in ("literal", "narrative-train", "narrative-val")]]
    rows = [[name, *(pct(r[a]) for a in ATTRIBUTES), f"{r['aesthetic']:.2f} ({r['aesthetic_ci95'][0]:.2f}-"
             f"{r['aesthetic_ci95'][1]:.2f})", f"{r['world_clip']:.1f}"] for name, r in sets]
    search = [[g, pct(r["all"]), f"{r['aesthetic']:.2f}"] for g, r in m["guidance_search"].items()]
    judges = card["judge-attributes"]
    judge_rows = [[k, *(pct(v[a]) for a in ATTRIBUTES)] for k, v in judges.items() if isinstance(v, dict)]
    judge_rows.append(["VAE round-trips", *(pct(card["vae"]["round_trip"][a]) for a in ATTRIBUTES)])
    clip = card["clip"]["zero_shot"]
    return HEAD + f"""# The embedded model

The base model of the embedded bundle and its judges, as the bundle recipe measured them
(`promptlift world train-bundle --parts measure`), from `src/promptlift/bundle/card.json`, {git_origin(CARD)};
{m['prompts_per_set']} prompts x {len(m['seeds'])} seeds per set (the report scenes), guidance {m['guidance_scale']},
judged by the attribute judge and the evaluation-only aesthetic predictor B (`world-aesthetic`, ground-truth scale
1-10). Machine: the project's CPU build machine, {m['torch_threads']} torch threads.

## The base model on the world's prompt sets

{table(["prompt set", "setting", "kind", "colour", "count", "all four", "aesthetic (95 % CI)", "world CLIP"], rows)}
Quality keywords raise the aesthetic of the same content, and narrative prompts lose it (kind and colour near chance,
1/6 and 1/8): the two effects promptlift exists for.

Guidance scale search (64 held-out complex prompts; the best became `pipeline/promptlift.json`'s default):

{table(["guidance", "all four", "aesthetic"], search)}
Generation: {m['seconds_per_image_batch1']:.2f} s for one image at 25 steps, {m['seconds_per_image_batched']:.2f} s per
image in batches of {m['timing_batch']}; the bundle's diffusion model and judges {m['bundle_size_mb']} MB.

## The judges

Attribute judge on {judges['held_out']} held-out renders, clean, blurred and noisy, and on the VAE's round-trips
(L1 {card['vae']['recon_l1_255']:.1f}/255):

{table(["input", "setting", "kind", "colour", "count", "all four"], judge_rows)}
World CLIP zero-shot on 960 literal captions: setting {pct(clip['setting'])}, kind {pct(clip['kind'])}, colour
{pct(clip['color'])}, count {pct(clip['count'])} %. Aesthetic predictors (Spearman with the ground truth on renders /
VAE round-trips): A (`world-aesthetic-reward`, training and curation) {card['aesthetic-reward']['spearman_renders']:.3f} /
{card['aesthetic-reward']['spearman_vae_round_trips']:.3f}; B (`world-aesthetic`, evaluation only)
{card['aesthetic']['spearman_renders']:.3f} / {card['aesthetic']['spearman_vae_round_trips']:.3f}.
"""


def refiner_section(rf: dict) -> str:
    """A refiner's card entry: how it was trained, against the raw prompt, the keyword expander and the ground-truth
    complex prompt, and its candidates' diversity."""
    if "eval" not in rf:
        return f"""
`{rf['recipe']}` ({rf['what']}); best step {rf['best_step']}. Its comparison with the raw prompt, the keyword expander
and the ground-truth complex prompt (`{rf['eval_command']}`) is not measured yet.
"""
    rf_rows, div_rows = [], []
    for name, systems in rf["eval"].items():
        for system, r in systems.items():
            if system == "diversity":
                div_rows += [[name, k, f"{v['distinct_1']:.3f} / {v['distinct_2']:.3f}", f"{v['pairwise_cosine_distance']:.3f}"]
                             for k, v in r.items() if k != "samples"]
                continue
            change = r.get("semantic_all_change")
            rf_rows.append([name, system, *(pct(r["semantic"][a]) for a in ATTRIBUTES),
                            "" if change is None else f"{100 * change:+.1f}", f"{r['aesthetic']:.2f}",
                            f"{pct(r.get('win_rate_vs_raw'))}{interval(r.get('ci95'))}"])
    return f"""
`{rf['recipe']}` ({rf['what']}); best step {rf['best_step']}. Against the raw prompt, the keyword expander and the
ground-truth complex prompt, 2 seeds per prompt (`{rf['eval_command']}`):

{table(["set", "system", "setting", "kind", "colour", "count", "all four", "all four vs raw", "aesthetic", "win rate vs raw"], rf_rows)}
Diversity of the 3 candidates per prompt (distinct-1 / distinct-2 over words; mean pairwise cosine distance of
all-MiniLM-L6-v2 embeddings; "added" leaves out the user's prompt when a candidate starts with it):

{table(["set", "candidates", "distinct-1 / distinct-2", "cosine distance"], div_rows)}"""


def methods_page(card: dict) -> str:
    qt = card["quality-tuning"]
    qt_rows = [[name, f"{pct(r['win_rate_vs_base'])}{interval(r['ci95'])}", f"{r['aesthetic']:.2f}", pct(r["semantic_all"])]
               for name, r in qt["eval"].items()]
    tc = card["textcraftor"]
    tc_rows = [[name, f"{r['judge_mean_base']:.2f} -> {r['judge_mean']:.2f}", pct(r["win_rate_vs_base"]),
                f"{pct(r['semantic_all_base'])} -> {pct(r['semantic_all'])}"] for name, r in tc["eval_heldout_64"].items()]
    sur = card["sur-adapter"]
    sur_rows = [[name, *(pct(r["semantic"][a]) for a in ATTRIBUTES), pct(r["semantic_base"]["all"]),
                 f"{pct(r['win_rate_vs_base'])}{interval(r['ci95'])}"] for name, r in sur["eval"].items()]
    previous = sur  # the ablations ran on an earlier recipe: the first in the chain of previous ones that has them
    while "ablations_500_steps_heldout64" not in previous:
        previous = previous["previous"]
    ab_rows = [[name, *(pct(r["semantic"][a]) for a in ATTRIBUTES), pct(r.get("win_rate_vs_base"))]
               for name, r in previous["ablations_500_steps_heldout64"].items()]
    return HEAD + f"""# The methods in the world

Each method's bundle weights on the embedded model, from `src/promptlift/bundle/card.json` ({git_origin(CARD)}),
as each run measured them: the aesthetic is predictor B's (`world-aesthetic`, never a training signal), semantic
accuracy the attribute judge's, in %, with bootstrap 95 % intervals over prompts.

## Quality-tuning (Emu)

`{qt['recipe']}`: {qt['curated']}; {qt['trained_steps']} steps, {qt['train_wall_min']} min of training; the
held-out check kept step {qt['best_step']}. 200 prompts x 2 seeds per set against the base model's images of the same seeds:

{table(["prompt set", "win rate vs base", "aesthetic", "all four"], qt_rows)}
## TextCraftor

`{tc['recipe']}` ({tc['what']}); best step {tc['best_step']}. The held-out check, 64 prompts with fixed seeds
(measured by `scripts/textcraftor_heldout.py`, since replaced by `promptlift eval --system`):

{table(["prompt set", "judge B, base -> tuned", "win rate vs base", "all four, base -> tuned"], tc_rows)}
## Prompt refiner (UF-FGTG)
{refiner_section(card["refiner"])}
### The paper's from-scratch T5 refiner

{card["refiner-t5"]["replaced"]}
{refiner_section(card["refiner-t5"])}
## SUR-adapter (the bundle's, alone)

`{sur['recipe']}` ({sur['what']}), best step {sur['best_step']}; `{sur['eval_command']}`, 200 prompts x 2 seeds
per set:

{table(["set", "setting", "kind", "colour", "count", "all four", "base all four", "win rate vs base"], sur_rows)}
The paper's ablations on {"an earlier bundle recipe (`" + previous['recipe'] + "`, without the mixed rows, the attribute head and the pools)" if previous is not sur else "this recipe"},
500 steps each, the trainer's held-out check (64 narrative-val prompts of other scenes; +-6 points on all four),
`research/sur_ablations.py --max_train_steps 500`:

{table(["run", "setting", "kind", "colour", "count", "all four", "win rate vs base"], ab_rows)}
The [narrative-prompts report](narrative.md) has the adapters trained since and the lifted stack.
"""


def short_teacher(spec: str) -> str:
    """A teacher's folder as a name: its last path part that is not a generic one ("model")."""
    parts = [p for p in spec.replace("@", " @").split("/") if p]
    return next((p for p in reversed(parts) if not p.startswith("model")), spec)


def probe_section(files: list[Path]) -> str:
    """The teacher probes (`research/teacher_probe.py --results`): what each teacher carries to unseen phrasings."""
    parts = []
    for path in files:
        record = json.loads(path.read_text())
        rows = [[" + ".join(short_teacher(t) for t in r["teacher"].split(" + ")), r["probe"], r["trained_on"], *(pct(r[a]) for a in ATTRIBUTES[:4])]
                for r in record["rows"]]
        parts.append(f"\n## Teacher probe: `benchmarks/results/{path.name}`\n\n{run_line(record['run'])}; "
                     f"features {'standardised' if record['standardise'] else 'as they are'}, {record['steps']} steps; "
                     "trained on narrative-train prompts, tested on 1000 narrative-val ones (unseen phrasings):\n\n"
                     + table(["teacher", "probe", "trained on", "setting", "kind", "colour", "count"], rows))
    return "".join(parts)


def narrative_page(files: list[Path], notes: Path | None = None, probes: list[Path] = (),
                   stack_files: list[Path] = ()) -> str:
    """The sur_eval results `files`, after the hand-written reading of them in `notes` (what the tables show), then
    the stack's ablations `stack_files` and the teacher probes `probes`."""
    parts = [HEAD + "# Narrative prompts: the SUR-adapter and the lifted stack\n\n"
             "Each table is one comparison of systems (`promptlift eval --system`; before it, `scripts/sur_eval.py`) "
             "against the base model on the same prompts and seeds: "
             "semantic accuracy (%) by the attribute judge, the change of all-four accuracy vs base and the aesthetic "
             "win rate vs base (predictor B), with bootstrap 95 % intervals over prompts. Prompt seed 3 draws the "
             "trainers' held-out scenes (used to choose), seed 0 the report scenes (used to report).\n"]
    if notes is not None and notes.is_file():
        parts.append("\n" + notes.read_text().strip() + "\n")
    for path in files:
        record = json.loads(path.read_text())
        parts.append(f"\n## {record.get('title', path.stem)}\n\n`benchmarks/results/{path.name}`: {run_line(record['run'])}; "
                     f"{record['num_prompts']} prompts x {record['seeds']} seeds per set, {scenes(record)}"
                     f"{setup(record)}.\n")
        systems = ", ".join(f"`{name}` = {describe_system(spec)}" for name, spec in record["systems"].items())
        parts.append(f"\nSystems: {systems}.\n")
        for name, rows in record["sets"].items():
            parts.append(f"\n{world_set(name)}:\n\n" + systems_markdown(rows))
    return "".join(parts) + stack_section(list(stack_files)) + probe_section(list(probes))


def scenes(record: dict) -> str:
    """Which world scenes a record's prompts are: prompt seed 0 (report) or another (seed 3: selection)."""
    seed = record.get("prompt_seed")
    if seed is None:  # `promptlift eval --system`: the world sets' subset seed-N
        subset = record.get("prompts_subset") or "seed-0"
        seed = int(subset.removeprefix("seed-")) if subset.startswith("seed-") else subset
    return f"prompt seed {seed}"


def setup(record: dict) -> str:
    """What older `scripts/sur_eval.py` records say of their systems (later records name every lift in `systems`)."""
    if "stack" not in record:
        return ""
    what = "the lifted stack with each adapter" if record["stack"] else "each adapter alone"
    return f", {what}, gate {record['gate']}"


def describe_system(spec) -> str:
    """A system of a results file: `promptlift eval --system`'s {"lift", "lift_option"}, or an older list of lifts."""
    lifts, options = (spec["lift"], spec["lift_option"]) if isinstance(spec, dict) else (spec, [])
    if not lifts:
        return "the base model"
    return " ".join(lifts) + (f" ({', '.join(options)})" if options else "")


def world_set(name: str) -> str:
    """A world prompt set's full name (older results files key them without the `world-` prefix)."""
    return name if name.startswith("world-") or "/" in name or "." in name else f"world-{name}"


def systems_markdown(rows: dict, judge: str = "aesthetic") -> str:
    """A table of systems against the base model (`evaluation.systems.system_table`'s rows; their "aesthetic" is the
    mean of `judge`)."""
    body = []
    for system, r in rows.items():
        s, vs, change = r.get("semantic", {}), r.get("vs_baseline"), r.get("semantic_all_change")
        body.append([system, *(pct(s.get(a)) for a in ATTRIBUTES),
                     "" if not change else f"{100 * change['mean']:+.1f} ({100 * change['ci95'][0]:+.1f}, "
                                           f"{100 * change['ci95'][1]:+.1f})",
                     f"{r['aesthetic']:.2f}", "" if not vs else f"{pct(vs['win_rate'])}{interval(vs['ci95'])}"])
    return table(["system", "setting", "kind", "colour", "count", "all four", "all four vs base", judge,
                  "win rate vs base"], body)


def category_markdown(cells: dict) -> str:
    """A benchmark's category table (`evaluation.systems.category_table` / `question_table`): a row per category, then
    overall; a column per system, the mean with its 95 % interval."""
    systems = list(next(iter(cells.values())))
    rows = [[category, *(f"{100 * c[s]['mean']:.1f}{interval(c[s]['ci95'])}" for s in systems)]
            for category, c in cells.items()]
    return table(["category", *systems], rows)


def following_page(files: list[Path], crosscheck: Path | None, cost: Path | None) -> str:
    """Prompt-following comparisons (`promptlift eval --system` with a following judge): the systems table, the
    benchmark's category tables; then the rules checked on true renders (`benchmarks/following_crosscheck.py`) and
    the judges' cost per image (`benchmarks/following_cost.py`)."""
    parts = [HEAD + "# Prompt following\n\nEach table compares systems on the same prompts and seeds "
             "(`promptlift eval --system`) by a prompt-following judge ([Prompt following](../prompt-following.md)); "
             "means in %, bootstrap 95 % intervals over prompts.\n"]
    for path in files:
        record = json.loads(path.read_text())
        parts.append(f"\n## {record.get('title', path.stem)}\n\n`benchmarks/results/{path.name}`: {run_line(record['run'])}; "
                     f"{record['num_prompts']} prompts x {record['seeds']} seeds per set, {scenes(record)}.\n")
        systems = ", ".join(f"`{name}` = {describe_system(spec)}" for name, spec in record["systems"].items())
        parts.append(f"\nSystems: {systems}. Judge: `{record['judge']}`.\n")
        for name, rows in record["sets"].items():
            judged_with = record.get("judged_with", {}).get(name)
            parts.append(f"\n{world_set(name)}" + (f", judged with {judged_with}" if judged_with else "") + ":\n\n"
                         + systems_markdown(rows, record["judge"]))
            for key, what in (("by_category", "by prompt category (the mean score)"),
                              ("by_question_category", "by question category (the share of questions answered right; "
                                                       "overall: the mean image score)")):
                if name in record.get(key, {}):
                    parts.append(f"\n{world_set(name)} {what}:\n\n" + category_markdown(record[key][name]))
    if crosscheck is not None:
        r = json.loads(crosscheck.read_text())
        rows = [[world_set(name), x["n"], f"{x['agreement']:.3f}", f"{x['vqa_agreement']:.3f}", pct(x["judge"]),
                 pct(x["geneval"]), pct(x["vqa"])] for name, x in r["sets"].items()]
        parts.append(f"""
## {r['title']}

`benchmarks/following_crosscheck.py` -> `benchmarks/results/{crosscheck.name}`: {run_line(r['run'])}. On the renderer's
own image of each prompt's scene (the truth), the embedded attribute judge stands behind the detector and VQA
interfaces: agreement is how often GenEval's verdict (and the questions' all-right) equals the judge's kind, colour
and count all right, image by image; the shares are how often each reads the true image as right.

{table(["prompt set", "renders", "GenEval rules vs judge", "questions vs judge", "judge right (%)",
        "GenEval rules pass (%)", "all questions right (%)"], rows)}""")
    if cost is not None:
        r = json.loads(cost.read_text())
        g = r["generation"]
        rows = [[name, f"{s:.2f}", f"{s / g['image_s']:.3f}x"] for name, s in r["per_image_s"].items()]
        parts.append(f"""
## {r['title']}

`benchmarks/following_cost.py` -> `benchmarks/results/{cost.name}`: {run_line(r['run'])}. Full-size architectures with
random weights (the same compute as the published weights), through promptlift's judge classes; the baseline, measured
in the same process, is SD 1.5 at 512 px: {g['unet_step_s']:.2f} s a guided UNet step, {g['vae_decode_s']:.2f} s a VAE
decode, {g['image_s']:.1f} s an image of {g['steps']} steps.

{table(["judge, per image", f"seconds ({r['device']})", "vs generating the image"], rows)}""")
    return "".join(parts)


def stack_section(files: list[Path]) -> str:
    """The stack's factorial and leave-one-out runs (`research/lift_factorial.py --results`): every cell, and what
    each lift gives (the factorial: its marginal effect; leave-one-out: the stack minus the stack without it)."""
    parts = []
    for path in files:
        record = json.loads(path.read_text())
        parts.append(f"\n## Lift ablation: `benchmarks/results/{path.name}`\n\n{run_line(record['run'])}.\n")
        for name, result in record["sets"].items():
            effects = result.get("leave_one_out") or result.get("marginal_effects") or {}
            what = ("the stack minus the stack without the lift" if "leave_one_out" in result
                    else "the mean of the 8 cells with the lift minus the 8 without")
            rows = [[lift, *(f"{100 * e[m]['mean']:+.1f}{interval(e[m]['ci95'], signed=True)}" for m in e)]
                    for lift, e in effects.items()]
            heads = ["lift", *next(iter(effects.values()), {}).keys()]
            parts.append(f"\n{name}, every cell against the base model:\n\n" + systems_markdown(result["cells"])
                         + f"\nWhat each lift gives ({what}; percentage points, 95 % interval):\n\n"
                         + table(heads, rows))
            if "full" in result:
                parts.append("\nThe base model and the whole stack on all the prompts:\n\n" + systems_markdown(result["full"]))
    return "".join(parts)


def text_and_tables(printed: str) -> str:
    """A script's printout as markdown: its markdown-table lines as tables, the rest as text blocks."""
    blocks, current, is_table = [], [], None
    for line in printed.strip().splitlines() + [""]:
        kind = line.startswith("|")
        if (kind != is_table or not line) and current:
            prose = not is_table and len(current) == 1 and current[0].endswith(":")  # a table's caption
            blocks.append("\n".join(current) + "\n" if is_table or prose else "```text\n" + "\n".join(current) + "\n```\n")
            current = []
        if line:
            current.append(line)
        is_table = kind
    return "\n".join(blocks)


def real_size_page() -> str:
    from promptlift.hardware.calibrate import CalibrateConfig, calibrate  # the command's own table

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        calibrate(CalibrateConfig(results=MEASURED, table=True, fit=[256, 384], check=[512]))
    return HEAD + f"""# Real size and memory

Every trainer run for one step on random full-size SD 1.5, SD 2.1 and SDXL pipelines on a CPU, and the memory model
`promptlift memory` fits on those steps. From `src/promptlift/memory/measured.jsonl` ({git_origin(MEASURED)}),
written by `promptlift memory calibrate` (fp32, 8-bit AdamW, gradient checkpointing, batch 1, on the project's 2-core CPU
machine); the tables below are `promptlift memory calibrate --table`'s output. The model is fitted on
256 and 384 px and checked on SD 1.5 at 512 px, measured and held out.

{text_and_tables(out.getvalue())}
Read the batch-1 projections as weights, gradients and optimizer state, which are counted, plus activations fitted
on 256 and 384 px. For SD 2.1 at 768 px and SDXL at 1024 px the activation term is extrapolated, and on SD 1.5 it
already ran low at 512 px: columns that multiply activations by the batch are lower bounds there. No step has run on
a GPU yet (`promptlift memory check`).
"""


def overhead_section(path: Path) -> str:
    """`benchmarks/lift_overhead.py --results`: each lift's and the stack's time and FLOPs per generation."""
    r = json.loads(path.read_text())
    times = [[size, name, f"{v['median_s']:.3f}", f"{v['vs_base']:.3f}x"]
             for size, systems in r["seconds"].items() for name, v in systems.items()]
    flops = [[name, f"{v['counted'] / 1e9:.2f}", f"{v['vs_base']:.3f}x",
              f"{v['sd15'] / 1e9:.1f}" if "sd15" in v else "", f"{v['sd15_vs_base']:.4f}x" if "sd15" in v else ""]
             for name, v in r["flops"].items()]
    return f"""
## What each lift costs a generation

`benchmarks/lift_overhead.py` generates the same world prompts and seeds ({r['prompts']}) with the base model, each
lift alone and the lifted stack, {r['steps']} steps, timed interleaved, the median of {r['repeats']} after a warm-up
(everything a generation does counts: the refiner's rewrite, the lifts' own models, the denoising, the VAE);
`benchmarks/results/{path.name}`: {run_line(r['run'])}.

{table(["batch", "system", "seconds per call", "vs base"], times)}
FLOPs of one image: counted on the embedded model, and projected to SD 1.5 at 512 px (the same lifts' work at that
size; an LM refiner's rewrite is the same on any model):

{table(["system", "GFLOP (embedded)", "vs base", "GFLOP (SD 1.5)", "vs base"], flops)}"""


def final_check_note(settings: dict) -> str:
    """What the runs did at the end: promptlift's final held-out check, which the peer does not run, or not."""
    if settings.get("eval_at_end", True):
        return ("The end-to-end difference is promptlift's final held-out check, which the peer does not run: the base "
                "model's scores are cached across runs, but the tuned model's held-out images (64 prompts, 25 steps) "
                "are made every run; `--no-eval_at_end` skips it.")
    return ("Neither runs a final check here (the peer has no `--validation_prompt`; promptlift runs with "
            "`--no-eval_at_end`, as a user who wants the weights only does); `benchmarks/peer_lora_speed.py "
            "--eval_at_end` adds promptlift's (64 held-out images with the tuned model).")


# the benchmarks that write their results through benchmarks/record.py, in the order the page shows them
BENCHMARKS = ("curation_throughput", "eval_overhead", "following_cost", "textcraftor_memory", "world_render", "cli_help")


def benchmark_sections() -> str:
    """Each benchmark's ratios from its results file (benchmarks/record.py), or that it has none yet."""
    parts, missing = [], []
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            missing.append(f"`benchmarks/{name}.py`")
            continue
        r = json.loads(path.read_text())
        parts.append(f"\n## {r['title']}\n\n`benchmarks/{name}.py` -> `benchmarks/results/{path.name}`: "
                     f"{run_line(r['run'])}.\n\n" + ratio_table(r["ratios"]))
    if missing:
        parts.append("\n## Benchmarks without a results file yet\n\nThese print their ratios against a baseline run in "
                     "the same process; their numbers are not reported here until they write their results file: "
                     f"{', '.join(missing)}.\n")
    return "".join(parts)


def ratio_table(ratios: list[dict], what: str = "ratio") -> str:
    """A results file's `ratios` (benchmarks/record.py) as a table: value, goal, and whether it is met."""
    rows = [[x["what"], f"{x['value']:.3f}x", x["goal"] or "", "" if not x["goal"] else
             ("yes" if _meets(x["value"], x["goal"]) else "no")] for x in ratios]
    return table([what, "value", "goal", "met"], rows)


def _meets(value: float, goal: str) -> bool:
    """Whether `value` meets a goal written as ">= 0.9x" or "<= 1.0x"."""
    sign, bound = goal.split()
    return value >= float(bound.rstrip("x")) if sign == ">=" else value <= float(bound.rstrip("x"))


def speed_page(peer: Path | None, overhead: Path | None = None) -> str:
    parts = [HEAD + "# Speed\n"]
    if peer is not None:
        r = json.loads(peer.read_text())
        runs = [[x["system"], x["steps"], f"{x['seconds']:.1f}", f"{x['peak_gib']:.2f}"] for x in r["runs"]]
        s = r["settings"]
        parts.append(f"""
## Training against diffusers' LoRA script

`benchmarks/peer_lora_speed.py` runs diffusers' `train_text_to_image_lora.py` (unchanged, from the peers' folder)
beside `promptlift train quality-tuning --use_lora` on the embedded model, {s['num_scenes']} world scenes at
{s['resolution']} px, batch {s['batch_size']}, rank {s['rank']}, {s['num_threads']} threads, for {s['short_steps']} and
{s['steps']} steps. `benchmarks/results/{peer.name}`: {run_line(r['run'])}.

{table(["system", "steps", "wall s", "peak resident GiB"], runs)}
Per step (the difference of the two runs over the steps between): promptlift {r['per_step_seconds']['promptlift']:.3f} s,
peer {r['per_step_seconds']['peer']:.3f} s (promptlift caches the VAE latents; the peer encodes every batch). The
estimate carries the jitter of all that both runs of a system share (start-up, caching, promptlift's held-out check,
a few seconds each), spread over the steps between: one run of the script is not enough to decide a goal of 1.0x.

{ratio_table(r["ratios"], "promptlift / peer")}
{final_check_note(s)}
""")
    if overhead is not None:
        parts.append(overhead_section(overhead))
    parts.append(benchmark_sections())
    return "".join(parts)


def headline_table(path: Path) -> str:
    """The README's results table: the lifted stack against the base model on each set of `path`."""
    if not path.is_file():
        return f"Not measured yet: `{path.relative_to(ROOT)}` is written by `promptlift eval --system ... --results`.\n"
    record = json.loads(path.read_text())
    rows, baseline = [], record.get("baseline", "base")
    for name, systems in record["sets"].items():
        base = systems[baseline]
        for system, r in systems.items():
            if system == baseline:
                continue
            vs = r["vs_baseline"]
            rows.append([world_set(name), pct(base["semantic"]["all"]), pct(r["semantic"]["all"]),
                         f"{base['aesthetic']:.2f} -> {r['aesthetic']:.2f}", f"{pct(vs['win_rate'])}{interval(vs['ci95'])}"])
    return table(["prompt set", "base: all four", "stack: all four", "aesthetic, base -> stack", "win rate vs base"], rows)


def readme(text: str) -> str:
    """README.md with its results table re-written between the markers."""
    start, end = text.index(MARKS[0]) + len(MARKS[0]), text.index(MARKS[1])
    return text[:start] + headline_table(HEADLINE) + text[end:]


def index_page(pages: dict[str, str]) -> str:
    rows = "\n".join(f"- [{title}]({name})" for name, title in pages.items())
    return HEAD + f"""# Reports

What promptlift measured, apart from the guides. Each page is written by `scripts/make_reports.py` from results files
that the measuring scripts write, and names the date, commit, command and machine of its numbers; re-measuring
rewrites the results file, and the page follows.

{rows}
"""


def pages() -> dict[str, str]:
    card = json.loads(CARD.read_text())
    # in the order they were made: narrative-N-*.json by N, then the report files the README reads
    narrative = sorted(RESULTS.glob("narrative-*.json"),
                       key=lambda p: (int(n), p.name) if (n := p.name.split("-")[1]).isdigit() else (10**6, p.name))
    peer = RESULTS / "peer_lora_speed.json"
    out = {"bundle.md": bundle_page(card), "methods.md": methods_page(card), "real-size.md": real_size_page(),
           "speed.md": speed_page(peer if peer.is_file() else None,
                                   overhead if (overhead := RESULTS / "lift_overhead.json").is_file() else None), "narrative.md": narrative_page(narrative, RESULTS / "narrative-notes.md",
                                          sorted(RESULTS.glob("teacher-probe-*.json")),
                                          sorted(RESULTS.glob("stack-*.json")))}
    crosscheck = RESULTS / "following-crosscheck.json"
    following = sorted(p for p in RESULTS.glob("following-*.json") if p != crosscheck)
    cost = RESULTS / "following_cost.json"
    if following or crosscheck.is_file():
        out["following.md"] = following_page(following, crosscheck if crosscheck.is_file() else None,
                                             cost if cost.is_file() else None)
    titles = {"narrative.md": "Narrative prompts: the SUR-adapter and the lifted stack",
              "following.md": "Prompt following", "bundle.md": "The embedded model",
              "methods.md": "The methods in the world", "real-size.md": "Real size and memory", "speed.md": "Speed"}
    out["index.md"] = index_page({name: title for name, title in titles.items() if name in out})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed pages")
    args = parser.parse_args()
    stale = []
    for name, text in {**pages(), "../../README.md": readme(README.read_text())}.items():
        path = (PAGES / name).resolve()
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        raise SystemExit(f"stale report pages: {', '.join(stale)}; run .venv/bin/python scripts/make_reports.py")


if __name__ == "__main__":
    main()
