"""`promptlift memory check` at tiny size on the CPU: every trainer's step, the projections and the base and lifted
generations run through the same code the GPU run uses, so it cannot rot between the sessions that have a GPU."""

import json

from promptlift.hardware.check import TRAINERS, CheckConfig, check


def test_the_gpu_check_runs_at_tiny_size(tmp_path):
    rows = check(CheckConfig(output_dir=tmp_path, tiny=True))
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["rows"] == rows and saved["device"].startswith("cpu")
    for arch in ("sd1", "sdxl"):
        mine = [r for r in rows if r["arch"] == arch]
        assert [r["what"] for r in mine[: len(TRAINERS)]] == [f"train {m}" for m in TRAINERS]
        assert all(r["projected_gib"] is not None and r["seconds"] > 0 for r in mine[: len(TRAINERS)])
        assert mine[-1]["what"].startswith("generate lifted") and mine[-1]["lifted_time_ratio"] > 0
    assert "| sdxl | generate lifted (25 steps)" in (tmp_path / "gpu_check.md").read_text()
