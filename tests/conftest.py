"""Shared fixtures: tiny random pipelines of each architecture, built offline and saved to disk."""

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # `pytest -n N`: the workers share the cores (each at torch's default
    # thread count, OpenMP oversubscribes them and runs 10-30x slower); the CLI processes tests start inherit it
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
os.environ.setdefault("PROMPTLIFT_CACHE", tempfile.mkdtemp(prefix="promptlift-test-cache-"))  # not the user's cache

from promptlift.tiny import ARCHS, save_tiny_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def tiny_pipeline_dirs(tmp_path_factory):
    """{arch: folder} with a saved tiny pipeline per architecture (sd1, sd2 v-prediction, sdxl)."""
    root = tmp_path_factory.mktemp("pipelines")
    return {arch: save_tiny_pipeline(arch, root / arch) for arch in ARCHS}


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture
def tiny_dir(tiny_pipeline_dirs, arch):
    return tiny_pipeline_dirs[arch]


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    """Judges with random weights and a tiny world CLIP, laid out like the shipped bundle."""
    import torch

    from promptlift.judges import build_tokenizer
    from promptlift.judges import JUDGE_CLASSES
    from promptlift.judges.clip import build_clip, save_world_clip

    root = tmp_path_factory.mktemp("bundle")
    torch.manual_seed(0)
    for name, cls in JUDGE_CLASSES.items():
        cls().save_pretrained(root / "judges" / name)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(root / "pipeline" / "tokenizer")
    save_world_clip(build_clip(tokenizer), root)
    return root


@pytest.fixture(scope="session")
def world_set(tmp_path_factory):
    """A 6-scene world imagefolder (image + complex, literal, narrative columns): training data for method tests."""
    from promptlift.world.config import DatasetConfig
    from promptlift.world.dataset import build_dataset

    root = tmp_path_factory.mktemp("world-set") / "set"
    build_dataset(DatasetConfig(num_scenes=6, output_dir=root, num_workers=1))
    return root
