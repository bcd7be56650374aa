"""What the test files share: the promptlift command line run in-process."""

import os

from click.testing import CliRunner

from promptlift.cli import cli


def run_cli(*args, catch_exceptions: bool = False, **kwargs):
    """`promptlift ARGS...` in-process, every argument as a string; returns click's Result (exit_code, output)."""
    debug = ["--debug"] if os.environ.get("PROMPTLIFT_TEST_DEBUG") else []
    return CliRunner().invoke(cli, debug + [str(a) for a in args], catch_exceptions=catch_exceptions, **kwargs)


def clip_tokenizer_with_specials_last():
    """A byte-level CLIP tokenizer whose start token is not id 0 (OWL masks a query that starts with 0)."""
    from transformers import CLIPTokenizer

    from promptlift.tiny import _bytes_to_unicode

    chars = list(_bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)


def save_tiny_owl_and_clip(root):
    """Random OWLv2 and CLIP, tiny, saved in `root`/owl and `root`/clip as from_pretrained reads them (model and
    processor); returns `root`."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, Owlv2Config,
                              Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor)

    tokenizer = clip_tokenizer_with_specials_last()
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=len(tokenizer) - 2,
                eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(root / "owl")
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}),
                   tokenizer=tokenizer).save_pretrained(root / "owl")
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(root / "clip")
    return root


def save_tiny_blip_vqa(folder):
    """A random BLIP-VQA, tiny, with a small WordPiece vocabulary, saved in `folder`; returns it."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "words.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "is", "there", "a",
                                "dog", "cat", "?", "red"]) + "\n")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                num_attention_heads=4, encoder_hidden_size=32, bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
                sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config=vision)).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(folder)
    return folder
