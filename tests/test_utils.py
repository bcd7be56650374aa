"""Shared helpers: the prefetching reader keeps order, raises where the error happened, and stops when left; a run
record names the process count."""

import threading

import pytest

from promptlift.data.prefetch import prefetch


def test_prefetch_keeps_order_and_applies_fn():
    assert list(prefetch(range(100), lambda i: i * i, depth=3)) == [i * i for i in range(100)]


def test_prefetch_raises_the_workers_error_at_its_item():
    def fn(i):
        if i == 5:
            raise OSError("disk gone")
        return i

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(range(10), fn, depth=2):
            seen.append(x)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_stops_its_thread_when_the_loop_is_left():
    before = threading.active_count()
    for x in prefetch(iter(range(10**9)), lambda i: i, depth=4):
        if x == 10:
            break
    assert threading.active_count() == before


def test_read_prompts_from_text_jsonl_and_json_files(tmp_path):
    import json

    from promptlift.data.prompts import read_prompts

    (tmp_path / "p.txt").write_text("a cat\n\n  a dog \n")
    (tmp_path / "p.jsonl").write_text('{"text": "a cat"}\n{"text": ""}\n{"text": "a dog"}\n')
    (tmp_path / "p.json").write_text(json.dumps([{"text": "a cat"}, {"text": "a dog"}, {"text": "a cow"}]))
    assert read_prompts(tmp_path / "p.txt") == ["a cat", "a dog"]
    assert read_prompts(tmp_path / "p.jsonl", "text") == ["a cat", "a dog"]
    assert read_prompts(tmp_path / "p.json", "text", limit=2) == ["a cat", "a dog"]
    with pytest.raises(ValueError, match=r"p.json\[0\] has no column 'prompt'"):
        read_prompts(tmp_path / "p.json")
    (tmp_path / "p.csv").write_text("prompt\na cat\n")
    with pytest.raises(ValueError, match="is no .txt/.jsonl/.json file"):
        read_prompts(tmp_path / "p.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_prompts(tmp_path / "missing.json")


def test_run_record_names_the_launchers_process_count(monkeypatch):
    from promptlift.runs import run_record

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert run_record(["x"])["machine"]["processes"] == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun and accelerate launch set in every process
    record = run_record(["research/lift_factorial.py", "--num_threads", "1"])
    assert record["machine"]["processes"] == 2 and record["command"] == "research/lift_factorial.py --num_threads 1"
    assert run_record(["/x/src/promptlift/__main__.py", "eval"])["command"] == "promptlift eval"  # as a user types it
