"""Shared fixtures: tiny random pipelines of each architecture, built offline and saved to disk."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
