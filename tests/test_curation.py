"""Curation: every image decided with a reason, corrupt images dropped, duplicates and quotas, reproducible."""

import json
import shutil

from click.testing import CliRunner
from PIL import Image

from promptlift.cli import cli
from promptlift.world.config import DatasetConfig
from promptlift.world.dataset import build_dataset


def _pool(tmp_path):
    """A world dataset of 40 scenes plus a corrupt file, a tiny image and an exact duplicate."""
    root = tmp_path / "pool"
    build_dataset(DatasetConfig(num_scenes=40, output_dir=root, num_workers=1))
    lines = (root / "metadata.jsonl").read_text().splitlines()
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (20, 20)).save(root / "images" / "tiny.png")
    shutil.copy(root / "images" / "00000" / "0000003.png", root / "images" / "dup.png")
    first = json.loads(lines[3])
    extra = [{**first, "file_name": "images/corrupt.png"}, {**first, "file_name": "images/tiny.png"},
             {**first, "file_name": "images/dup.png"}]
    (root / "metadata.jsonl").write_text("\n".join(lines + [json.dumps(e) for e in extra]) + "\n")
    return root


def run_curate(pool, out, bundle, *extra):
    return CliRunner().invoke(cli, [str(a) for a in (
        "curate", "--input", pool, "--output_dir", out, "--caption_column", "complex", "--num_keep", 12,
        "--balance_column", "kind", "--max_share_per_class", 0.25, "--batch_size", 16, "--dedup_threshold", 0.99,
        "--reward_option", f"world-aesthetic-reward.bundle_dir={bundle}", "--reward_option", f"world-clip.bundle_dir={bundle}",
        *extra)], catch_exceptions=False)


def test_curation_decides_every_image_with_a_reason(tmp_path, tiny_bundle_dir):
    pool = _pool(tmp_path)
    result = run_curate(pool, tmp_path / "out", tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    decisions = [json.loads(x) for x in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 43 and all(d["reason"] for d in decisions)
    by_key = {d["key"]: d for d in decisions}
    assert by_key["images/corrupt.png"]["reason"].startswith("unreadable")
    assert by_key["images/tiny.png"]["reason"].startswith("size: 20x20")
    kept = [d for d in decisions if d["kept"]]
    assert len(kept) == 12
    assert max(sum(d["class"] == k for d in kept) for k in {d["class"] for d in kept}) <= 3  # 25 % of 12
    assert not (by_key["images/dup.png"]["kept"] and by_key["images/00000/0000003.png"]["kept"])
    ranked = sorted((d for d in decisions if "aesthetic" in d and not d["reason"].startswith(("balance", "near"))),
                    key=lambda d: -d["aesthetic"])
    assert all(d["kept"] for d in ranked[: len([x for x in ranked if x["kept"]])])  # kept = the top of the ranking
    meta = [json.loads(x) for x in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()]
    assert len(meta) == 12 and all((tmp_path / "out" / m["file_name"]).is_file() for m in meta)
    assert "<svg" in (tmp_path / "out" / "report.html").read_text()

    again = run_curate(pool, tmp_path / "again", tiny_bundle_dir)
    assert again.exit_code == 0
    assert (tmp_path / "again" / "decisions.jsonl").read_text() == (tmp_path / "out" / "decisions.jsonl").read_text()


def test_curation_refuses_to_overwrite_and_names_bad_input(tmp_path, tiny_bundle_dir):
    pool = _pool(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    r = run_curate(pool, tmp_path / "out", tiny_bundle_dir)
    assert r.exit_code != 0 and "--overwrite" in r.output and (tmp_path / "out" / "keep.txt").read_text() == "mine"
    r = run_curate(tmp_path / "nope.txt", tmp_path / "x", tiny_bundle_dir, "--overwrite")
    assert r.exit_code != 0
    r = run_curate(pool, tmp_path / "y", tiny_bundle_dir, "--max_share_per_class", 0)
    assert r.exit_code != 0 and "`max_share_per_class` must be in (0, 1]" in r.output


def test_select_ranks_skips_duplicates_and_full_classes():
    import numpy as np

    from promptlift.data.curation import CurateConfig, select

    rng = np.random.default_rng(0)
    thumbs = {i: (v / np.linalg.norm(v)).astype(np.float16) for i, v in enumerate(rng.normal(size=(6, 256)))}
    thumbs[5] = thumbs[0]  # image 5 is image 0 again
    rows = [{"index": i, "key": f"k{i}", "aesthetic": a, "clip": 0.0, "class": c}
            for i, (a, c) in enumerate([(9, "a"), (8, "a"), (7, "a"), (6, "b"), (1, "b"), (8.5, "b")])]
    rows.append({"index": 6, "key": "k6", "dropped": "unreadable: broken"})
    cfg = CurateConfig(input="x", num_keep=3, balance_column="class", max_share_per_class=0.6, min_aesthetic=2.0)
    d = {x["key"]: x for x in select(rows, thumbs, cfg)}
    assert [k for k in sorted(d) if d[k]["kept"]] == ["k0", "k1", "k3"]
    assert d["k5"]["reason"].startswith("near-duplicate of k0")
    assert d["k2"]["reason"] == "balance: class 'a' has its quota of 2"
    assert d["k4"]["reason"] == "aesthetic 1.000 < 2.0" and d["k6"]["reason"] == "unreadable: broken"


def test_a_bad_metadata_line_is_named_and_a_failed_run_leaves_nothing(tmp_path, tiny_bundle_dir):
    from promptlift.data.records import count_records

    pool = _pool(tmp_path)
    assert count_records(pool) == 43 and count_records(pool, shard=(1, 2)) == 21
    lines = (pool / "metadata.jsonl").read_text().splitlines()
    lines[5] = '{"file_name": "images/x.png", '  # cut off mid-line
    (pool / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["curate", "--input", str(pool), "--output_dir", str(tmp_path / "out"),
                                      "--reward_option", f"world-aesthetic-reward.bundle_dir={tiny_bundle_dir}",
                                      "--caption_column", "complex", "--num_keep", "4"])
    assert result.exit_code == 1 and f"{pool / 'metadata.jsonl'}:6: not a JSON object" in result.output, result.output
    assert not (tmp_path / ".out.scores").exists() and not (tmp_path / "out").exists()
