"""What the prompt-following judges cost per image, against generating that image with SD 1.5, measured in one process.

    .venv/bin/python benchmarks/following_cost.py [--repeats 3] [--steps 25]

Every model is its published architecture at full size with random weights (compute does not depend on the weights'
values; nothing is downloaded): OWLv2 base/16 at 960 px, CLIP ViT-L/14 and ViT-B/32 at 224 px, BLIP-VQA base at
384 px, and, as the baseline, SD 1.5's UNet (a classifier-free-guidance step: batch 2 at 64 x 64 latents) and VAE
decoder at 512 px. The judges run through promptlift's own classes (processors included). Per image:

- geneval: one OWLv2 pass for the prompt's classes, then CLIP-L on each box GenEval's metadata asks a colour of;
- vqa: one BLIP-VQA answer (up to 5 tokens) per question (GenEval's metadata gives the questions per prompt;
  DPG-Bench's file its own);
- t2i-compbench: its categories' methods (two noun-phrase questions for attribute binding, one OWLv2 pass for
  spatial, one CLIP-B/32 score for non-spatial).

Prints seconds per image and the ratios to one 25-step SD 1.5 generation; on CUDA where present. Writes
benchmarks/results/following_cost.json (its ratios go to docs/reports/speed.md).
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.rewards.clip import CLIPScore, load_clip  # noqa: E402
from promptlift.rewards.following import ClipColors, Detection, OwlDetector  # noqa: E402
from promptlift.rewards.questions import BlipVQA, Question  # noqa: E402
from promptlift.tiny import byte_level_clip_tokenizer  # noqa: E402
from record import add_results_option, ratio, write_results  # noqa: E402  (benchmarks/record.py)

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def seconds(fn, repeats: int) -> float:
    """The median wall time of fn() over `repeats` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clip_config(vision: tuple, text: tuple, projection: int, image_size: int):
    """CLIP's config from (hidden, layers, heads, patch) of the towers."""
    from transformers import CLIPConfig

    (vh, vl, va, patch), (th, tl, ta) = vision, text
    return CLIPConfig(vision_config=dict(hidden_size=vh, intermediate_size=4 * vh, num_hidden_layers=vl,
                                         num_attention_heads=va, patch_size=patch, image_size=image_size),
                      text_config=dict(hidden_size=th, intermediate_size=4 * th, num_hidden_layers=tl,
                                       num_attention_heads=ta, vocab_size=49408),
                      projection_dim=projection)


def save_models(root: Path) -> dict[str, str]:
    """The judges' models at full size, random, saved as from_pretrained reads them."""
    from transformers import (BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor,
                              CLIPImageProcessor, CLIPModel, CLIPProcessor, Owlv2Config, Owlv2ForObjectDetection,
                              Owlv2ImageProcessor, Owlv2Processor)

    torch.manual_seed(0)
    tokenizer = byte_level_clip_tokenizer()
    owl = clip_config((768, 12, 12, 16), (512, 12, 8), 512, 960).to_dict()
    Owlv2ForObjectDetection(Owlv2Config(text_config=owl["text_config"], vision_config=owl["vision_config"],
                                        projection_dim=512)).save_pretrained(root / "owl")
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 960, "width": 960}),
                   tokenizer=tokenizer).save_pretrained(root / "owl")
    for name, config in (("clip-l", clip_config((1024, 24, 16, 14), (768, 12, 12), 768, 224)),
                         ("clip-b", clip_config((768, 12, 12, 32), (512, 12, 8), 512, 224))):
        CLIPModel(config).save_pretrained(root / name)
        CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(root / name)
    words = root / "vocab.txt"
    words.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "is", "there",
                                "a", "the", "dog", "cat", "red", "two", "?"]) + "\n")
    blip_tokenizer = BertTokenizer(str(words), bos_token="[DEC]")
    BlipForQuestionAnswering(BlipConfig(text_config=dict(bos_token_id=blip_tokenizer.convert_tokens_to_ids("[DEC]"),
                                                         sep_token_id=blip_tokenizer.sep_token_id,
                                                         pad_token_id=blip_tokenizer.pad_token_id))).save_pretrained(root / "blip")
    BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=blip_tokenizer).save_pretrained(root / "blip")
    return {name: str(root / name) for name in ("owl", "clip-l", "clip-b", "blip")}


def sd15_generation(device: str, steps: int, repeats: int) -> dict:
    """Seconds of one guided UNet step and one VAE decode of SD 1.5 at 512 px, and of a `steps`-step image."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).to(device).eval()
    blocks = ("DownEncoderBlock2D",) * 4
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=blocks,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512).to(device).eval()
    latents, text = torch.randn(2, 4, 64, 64, device=device), torch.randn(2, 77, 768, device=device)
    with torch.no_grad():
        step = seconds(lambda: unet(latents, 500, encoder_hidden_states=text), repeats)
        decode = seconds(lambda: vae.decode(latents[:1]), repeats)
    return {"unet_step_s": step, "vae_decode_s": decode, "image_s": steps * step + decode, "steps": steps}


def geneval_counts(path: Path) -> dict:
    """Per GenEval prompt on average: questions written from its metadata, and boxes its colour rules check."""
    from promptlift.rewards.questions import geneval_questions

    if not path.is_file():
        raise SystemExit(f"GenEval's metadata {str(path)!r} is missing: pass --geneval_metadata PATH "
                         "(evaluation_metadata.jsonl of GenEval's repository, prompts/).")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {"questions": sum(len(geneval_questions(r)) for r in rows) / len(rows),
            "colour_boxes": sum(o["count"] for r in rows for o in r["include"] if "color" in o) / len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25, help="Denoising steps of the baseline generation.")
    parser.add_argument("--geneval_metadata", type=Path, default=BENCH / "geneval_evaluation_metadata.jsonl",
                        help="GenEval's metadata, for its prompts' mean questions and colour boxes.")
    add_results_option(parser, "following_cost")
    args = parser.parse_args()
    counts = geneval_counts(args.geneval_metadata)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generation = sd15_generation(device, args.steps, args.repeats)
    print(f"SD 1.5, 512 px: {generation['unet_step_s']:.2f} s a guided step, {generation['vae_decode_s']:.2f} s a "
          f"decode, {generation['image_s']:.1f} s an image of {args.steps} steps", flush=True)
    models = save_models(Path(tempfile.mkdtemp()))
    image = torch.rand(3, 512, 512)
    owl = OwlDetector(models["owl"])
    colors, vqa = ClipColors(models["clip-l"]), BlipVQA(models["blip"])
    for judge in (owl, colors, vqa):
        judge.model.to(device)
    clip_b = CLIPScore(*load_clip(models["clip-b"])).to(device)
    box = [Detection("dog", 1.0, (100.0, 100.0, 300.0, 300.0))]
    parts = {
        "owlv2_pass_s": seconds(lambda: owl.detect(image[None], [["dog", "cat"]]), args.repeats),
        "clip_l_box_s": seconds(lambda: colors(image, box, "dog"), args.repeats),
        "blip_answer_s": seconds(lambda: vqa.answer(image[None], [[Question("is there a dog?", "entity")]]),
                                 args.repeats),
        "blip_yes_probability_s": seconds(lambda: vqa.yes_probability(image, ["a red dog?"]), args.repeats),
        "clip_b_score_s": seconds(lambda: clip_b(image[None].to(device), ["a dog is chasing a cat"]), args.repeats),
    }
    per_image = {
        "geneval": parts["owlv2_pass_s"] + counts["colour_boxes"] * parts["clip_l_box_s"],
        "vqa (GenEval's questions)": counts["questions"] * parts["blip_answer_s"],
        "vqa, per DPG-Bench question": parts["blip_answer_s"],
        "t2i-compbench attribute": 2 * parts["blip_yes_probability_s"],
        "t2i-compbench spatial": parts["owlv2_pass_s"],
        "t2i-compbench non-spatial": parts["clip_b_score_s"],
    }
    for name, value in {**parts, **per_image}.items():
        print(f"{name:<32} {value:8.3f} s  = {value / generation['image_s']:.3f} x a {args.steps}-step SD 1.5 image")
    ratios = [ratio(f"{name} judge per image / a {args.steps}-step SD 1.5 512 px image", value / generation["image_s"])
              for name, value in per_image.items()]
    write_results(args.results, "Prompt-following judges per image, against generating it", ratios,
                  device=device, generation=generation, parts=parts, per_image_s=per_image, geneval_counts=counts)


if __name__ == "__main__":
    main()
