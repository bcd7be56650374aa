"""Human A/B votes in SQLite (WAL, so many raters write at once), their win rates, and export to a compare report.

A vote is on one pair: the same prompt and seed from two eval runs, shown in random order with the systems
hidden; the question is "visual appeal" or "text faithfulness"; the answer names the run that won, or a tie.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ..stats import win_rate
from ..files import atomic_write_json

__all__ = ["QUESTIONS", "VoteStore"]

QUESTIONS = ("visual appeal", "text faithfulness")
_SCHEMA = """CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, rater TEXT NOT NULL,
    run_a TEXT NOT NULL, run_b TEXT NOT NULL, prompt TEXT NOT NULL, seed INTEGER NOT NULL,
    question TEXT NOT NULL, winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')))"""


class VoteStore:
    """Append-only votes; one connection per thread, WAL journal, writes retried while the file is busy."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def add(self, rater: str, run_a: str, run_b: str, prompt: str, seed: int, question: str, winner: str) -> None:
        """Record one vote; `winner` is 'a' (run_a won), 'b' or 'tie'."""
        if question not in QUESTIONS:
            raise ValueError(f"question {question!r} must be one of {QUESTIONS}.")
        if winner not in ("a", "b", "tie"):
            raise ValueError(f"winner {winner!r} must be 'a', 'b' or 'tie'.")
        for attempt in range(20):
            try:
                self._connect().execute(
                    "INSERT INTO votes (ts, rater, run_a, run_b, prompt, seed, question, winner) VALUES (?,?,?,?,?,?,?,?)",
                    (time.time(), rater[:64], run_a, run_b, prompt, int(seed), question, winner))
                return
            except sqlite3.OperationalError:  # "database is locked" beyond busy_timeout: retry, never drop
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"could not record the vote in {self.path} (the database stayed locked).")

    def rows(self, run_a: str | None = None, run_b: str | None = None) -> list[dict]:
        query, args = "SELECT rater, run_a, run_b, prompt, seed, question, winner FROM votes", ()
        if run_a is not None:
            query, args = query + " WHERE run_a = ? AND run_b = ?", (run_a, run_b)
        keys = ("rater", "run_a", "run_b", "prompt", "seed", "question", "winner")
        return [dict(zip(keys, r)) for r in self._connect().execute(query, args).fetchall()]

    def table(self, run_a: str, run_b: str) -> list[dict]:
        """Per question: votes, win rate of run_a (ties count half) with a bootstrap 95 % interval over prompts."""
        out = []
        rows = self.rows(run_a, run_b)
        for question in QUESTIONS:
            votes = [r for r in rows if r["question"] == question]
            if not votes:
                out.append({"question": question, "votes": 0, "win_rate": None, "ci95": None})
                continue
            a = [1.0 if v["winner"] == "a" else 0.5 if v["winner"] == "tie" else 0.0 for v in votes]
            result = win_rate(a, [1.0 - x for x in a], [v["prompt"] for v in votes], tie_tolerance=0.0)
            out.append({"question": question, "votes": len(votes), "win_rate": result["win_rate"], "ci95": result["ci95"]})
        return out

    def export(self, run_a: Path, run_b: Path, images: dict[tuple[str, int], tuple[str, str]], output: Path,
               question: str = "visual appeal") -> dict:
        """compare.json + compare.html (the CLI's report) from the human votes on `question`."""
        from ..evaluation.report import write_compare_report

        votes = [v for v in self.rows(str(run_a), str(run_b)) if v["question"] == question]
        if not votes:
            raise ValueError(f"no votes on {question!r} for these runs yet.")
        pairs = [{"prompt": v["prompt"], "seed": v["seed"], "category": None,
                  "a": {"a": 1.0, "tie": 0.5, "b": 0.0}[v["winner"]], "b": {"a": 0.0, "tie": 0.5, "b": 1.0}[v["winner"]],
                  "image_a": images[(v["prompt"], v["seed"])][0], "image_b": images[(v["prompt"], v["seed"])][1]}
                 for v in votes if (v["prompt"], v["seed"]) in images]
        result = {"judge": f"human votes ({question})", **win_rate([p["a"] for p in pairs], [p["b"] for p in pairs],
                                                                  [p["prompt"] for p in pairs])}
        output.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output / "compare.json", {**result, "run_a": str(run_a), "run_b": str(run_b)})
        write_compare_report(output / "compare.html", result, pairs, run_a, run_b)
        return result
