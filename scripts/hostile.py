"""Hostile and careless input against every ``unmask`` command: one row per attempt, then the totals.

    .venv/bin/python scripts/hostile.py                 # the whole catalogue (about 2 minutes)
    .venv/bin/python scripts/hostile.py --only fifo nan # attempts whose name contains a word

Each attempt runs ``python -m unmask ...`` in a subprocess (tiny models, 32-pixel images) and records:
the exit code; whether a traceback reached the user; whether the error is one line; whether the outputs
that must survive exist and are valid (results.json parses without NaN, index.html is there, a store is
unchanged). An attempt that exits 0 where an error is due counts as a silent wrong answer; one that runs
past its time limit as a hang. tests/test_hostile.py runs the same catalogue.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

MODELS = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).eval()


class _Broken(nn.Module):
    """The small model with ``damage`` applied to its inputs and logits: a model that breaks a rule of the API."""

    def __init__(self, damage):
        super().__init__()
        self.net, self.damage = build(), damage

    def forward(self, x):
        return self.damage(x, self.net(x))


def _nan_where_bright(x, out):  # NaN logits for images brighter than average: breaks on some inputs only
    bright = (x.mean((1, 2, 3)) > 0).view(-1, 1)
    return torch.where(bright, torch.full_like(out, float("nan")), out)


def nan_for_bright():
    return _Broken(_nan_where_bright).eval()


def integer():
    return _Broken(lambda x, out: out.round().long()).eval()


def zero_width():
    return _Broken(lambda x, out: out[:, :0]).eval()


def pair():
    return _Broken(lambda x, out: (out, out.detach())).eval()
'''


def _picture(path: Path, seed: int, size: tuple[int, int] = (40, 40)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def build_workspace(root: Path) -> Path:
    """Models, images (good and hostile) and class folders under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models.py").write_text(MODELS, encoding="utf-8")
    (root / "classes.txt").write_text("circle\ncat\ndog\n", encoding="utf-8")
    for k in range(3):
        _picture(root / "good" / f"{k}.png", k)
        _picture(root / "bright" / f"{k}.png", 10 + k)
    bright = np.full((40, 40, 3), 250, np.uint8)
    Image.fromarray(bright).save(root / "bright" / "white.png")
    Image.fromarray(np.full((40, 40, 3), 20, np.uint8)).save(root / "dark.png")
    _picture(root / "weird" / "results.json.png", 3)
    _picture(root / "weird" / "index.html.png", 4)
    _picture(Path(os.fsdecode(bytes(root / "weird") + b"/caf\xff.png")), 5)
    for label in ("cat", "dog"):
        for k in range(3):
            _picture(root / "folder" / label / f"{k}.png", 20 + k + (label == "dog") * 5)
            _picture(root / "pets" / ("kitten" if label == "cat" else "puppy") / f"{k}.png", 30 + k)
    good = (root / "good" / "0.png").read_bytes()
    (root / "damaged.png").write_bytes(good[: len(good) // 2])
    for k in range(3):
        _picture(root / "mixed" / f"{k}.png", 40 + k)
    (root / "mixed" / "damaged.png").write_bytes(good[: len(good) // 2])
    os.mkfifo(root / "fifo.png")
    nan = np.random.default_rng(0).random((40, 40), dtype=np.float32)
    nan[5, 5] = np.nan
    Image.fromarray(nan, mode="F").save(root / "nan.tif")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 200_000, 3), dtype=np.uint8)).save(root / "long.png")
    (root / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------ checks


def _json_ok(path: Path) -> bool:
    def refuse(constant: str) -> float:
        raise ValueError(constant)

    try:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except (OSError, ValueError):
        return False
    return True


def report_ok(out: str, data: str = "results.json") -> Callable[[Path], bool]:
    """The report of ``out``: ``data`` parses as strict JSON and index.html exists."""
    return lambda root: _json_ok(root / out / data) and (root / out / "index.html").is_file()


def explained_images(out: str, least: int) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        if not report_ok(out)(root):
            return False
        results = json.loads((root / out / "results.json").read_text(encoding="utf-8"))
        return len(results["images"]) >= least
    return check


def unchanged(*names: str) -> Callable[[Path], bool]:
    """Files that must be as they were before the attempt (their hashes are taken by the runner)."""
    check = lambda root: all(_hash(root / n) == FINGERPRINTS.get(str(root / n)) for n in names)
    check.watched = names  # type: ignore[attr-defined]
    return check


def store_complete(out: str, size: int) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from unmask.store import open_store

        try:
            return open_store(root / out).complete and len(open_store(root / out)) == size
        except Exception:  # noqa: BLE001 - a damaged store is a failed check
            return False
    return check


def dbscan_count_true(out: str) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        try:
            data = json.loads((root / out / "spray.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        found = {label for label in data["labels"] if label >= 0}
        return data["n_clusters"] == len(found)
    return check


FINGERPRINTS: dict[str, str | None] = {}


def _hash(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None


# ------------------------------------------------------------------------------------------ catalogue

TINY = ["--model", "models.py:build", "--image-size", "32", "--no-progress"]
EXPLAIN = ["explain", *TINY, "--method", "gradient_x_input"]


@dataclass
class Attempt:
    """One hostile run: its issue class, the arguments after ``unmask``, the exit codes that are right,
    a piece of the one-line error it must print, and what must exist and be valid afterwards."""

    name: str
    kind: str
    argv: list[str]
    codes: tuple[int, ...]
    message: str = ""
    outputs: Callable[[Path], bool] | None = None
    before: list[list[str]] = field(default_factory=list)  # commands run first (must succeed or fail as they like)
    timeout: float = 180.0

    @property
    def command(self) -> str:
        return self.argv[0]


STORE = ["attribute", "folder", "--out", "store", *TINY, "--method", "gradient_x_input", "--batch-size", "2", "--shard-size", "2"]

CATALOGUE = [
    # finished work lost
    Attempt("nan logits for some images", "lost", [*EXPLAIN, "--out", "o-nan", "good", "bright", "--model", "models.py:nan_for_bright"],
            (1,), "not finite", explained_images("o-nan", 3)),
    Attempt("report names and non-UTF-8 file name", "lost", [*EXPLAIN, "--out", "o-weird", "weird", "good/0.png"], (0,), "",
            explained_images("o-weird", 4)),
    Attempt("epsilon=1e999", "lost", ["explain", *TINY, "--method", "lrp.epsilon", "--param", "epsilon=1e999", "--out", "o-eps", "good"],
            (2,), "epsilon must be a finite number"),
    Attempt("evaluate nan logits", "lost", ["evaluate", *TINY, "--method", "gradient_x_input", "--steps", "4", "--region", "8",
                                             "--metric", "morf", "--out", "o-eval-nan", "dark.png", "bright/white.png",
                                             "--model", "models.py:nan_for_bright"], (1,), "left out of the evaluation",
            report_ok("o-eval-nan", "evaluation.json")),
    Attempt("dissect unwritable --out", "lost", ["dissect", *TINY, "--layer", "0", "--images", "8", "--out", "notes.txt/sub"],
            (2,), "cannot create --out", timeout=60),
    Attempt("attribute bad parameter, then the corrected command", "lost", STORE, (0,), "", store_complete("store", 6),
            before=[[*STORE, "--param", "epsilon=-1", "--method", "lrp.epsilon"]]),
    Attempt("attribute a damaged image among good ones", "lost", ["attribute", "mixed", "--out", "s-mixed", *TINY, "--method", "gradient_x_input", "--shard-size", "2"],
            (2,), "damaged.png", store_complete("s-mixed", 4)),
    # data destroyed
    Attempt("merge onto store.json", "destroyed", ["attribute", "--merge", "store", "--out", "store/store.json"], (2,), "inside the store",
            unchanged("store/store.json")),
    Attempt("merge onto a shard", "destroyed", ["attribute", "--merge", "store", "--out", "store/shards/00000000-00000002.h5"], (2,),
            "inside the store", unchanged("store/shards/00000000-00000002.h5")),
    Attempt("merge onto a user's file", "destroyed", ["attribute", "--merge", "store", "--out", "notes.txt"], (2,),
            "not a merged unmask store", unchanged("notes.txt")),
    # silent wrong answers
    Attempt("gamma=nan", "silent", ["explain", *TINY, "--method", "lrp.epsilon_gamma_box", "--param", "gamma=float('nan')", "--out", "o-gamma", "good"],
            (2,), "gamma"),
    Attempt("gamma=inf", "silent", ["explain", *TINY, "--method", "lrp.epsilon_gamma_box", "--param", "gamma=1e999", "--out", "o-gamma2", "good"],
            (2,), "gamma must be a finite number"),
    Attempt("dissect rotate:nan", "silent", ["dissect", *TINY, "--layer", "0", "--images", "8", "--perturb", "rotate:nan", "--out", "o-d1"],
            (2,), "finite", timeout=60),
    Attempt("dissect noise:1e999", "silent", ["dissect", *TINY, "--layer", "0", "--images", "8", "--perturb", "noise:1e999", "--out", "o-d2"],
            (2,), "finite", timeout=60),
    Attempt("float TIFF with a NaN pixel", "silent", [*EXPLAIN, "--out", "o-tif", "nan.tif"], (2,), "NaN"),
    Attempt("folder labels that are not model classes", "silent",
            ["attribute", "pets", "--out", "s-pets", *TINY, "--classes", "classes.txt", "--target", "label"], (2,), "not the model's class names"),
    Attempt("spray dbscan cluster count", "silent", ["spray", "store", "--out", "o-spray", "--clusterer", "dbscan", "--embedding", "none",
                                                     "--size", "4"], (0,), "", dbscan_count_true("o-spray")),
    # tracebacks and hangs
    Attempt("--device meta", "traceback", [*EXPLAIN, "--out", "o-meta", "--device", "meta", "good"], (2,), "--device meta"),
    Attempt("evaluate --device meta", "traceback", ["evaluate", *TINY, "--device", "meta", "--out", "o-meta2", "good"], (2,), "--device meta"),
    Attempt("integer outputs", "traceback", [*EXPLAIN, "--out", "o-int", "good", "--model", "models.py:integer"], (2,), "floating-point"),
    Attempt("zero-width outputs", "traceback", [*EXPLAIN, "--out", "o-zero", "good", "--model", "models.py:zero_width"], (2,), "no classes"),
    Attempt("tuple outputs", "traceback", [*EXPLAIN, "--out", "o-pair", "good", "--model", "models.py:pair"], (2,), "tuple"),
    Attempt("--image-size 100000", "traceback", ["explain", "--model", "models.py:build", "--image-size", "100000", "--no-progress",
                                                 "--method", "gradient_x_input", "--out", "o-huge", "good"], (2,), "over the limit"),
    Attempt("a FIFO as an image", "hang", [*EXPLAIN, "--out", "o-fifo", "fifo.png"], (2,), "not a regular file", timeout=60),
    Attempt("a 200000 x 32 image", "memory", [*EXPLAIN, "--out", "o-long", "long.png"], (0,), "", explained_images("o-long", 1)),
    Attempt("spray on a folder that is no store", "traceback", ["spray", "good", "--out", "o-nostore"], (2,), "not a results store"),
    Attempt("prototype --lr nan", "silent", ["prototype", *TINY, "--target", "0", "--steps", "2", "--lr", "nan", "--out", "o-proto"], (2,), "lr must be a finite number"),
    Attempt("explore a folder that is no store", "traceback", ["explore", "good", "--no-progress"], (2,), "not a results store"),
    Attempt("explore --port 99999", "traceback", ["explore", "store", "--port", "99999"], (2,), "a port is 0 to 65535", timeout=60),
    Attempt("explore --static onto a file", "destroyed", ["explore", "store", "--static", "notes.txt", "--no-progress"], (2,),
            "exists and is not a folder", unchanged("notes.txt")),
    Attempt("methods", "sanity", ["methods"], (0,)),
]


# ------------------------------------------------------------------------------------------ running


@dataclass
class Row:
    attempt: Attempt
    code: int | None
    traceback: bool
    one_line: bool
    message_ok: bool
    outputs_ok: bool | None
    seconds: float

    @property
    def silent_wrong(self) -> bool:
        return self.code == 0 and 0 not in self.attempt.codes

    @property
    def ok(self) -> bool:
        return (self.code in self.attempt.codes and not self.traceback and self.one_line and self.message_ok
                and self.outputs_ok is not False)


def _unmask(root: Path, argv: list[str], timeout: float) -> tuple[int | None, str, float]:
    import time

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "UNMASK_TRACEBACK_DIR": str(root / "tracebacks"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "unmask", *argv], cwd=root, capture_output=True, text=True,
                              errors="replace", env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", time.perf_counter() - started
    return done.returncode, done.stderr, time.perf_counter() - started


def run_attempt(root: Path, attempt: Attempt) -> Row:
    for argv in attempt.before:
        _unmask(root, argv, attempt.timeout)
    for name in getattr(attempt.outputs, "watched", ()):
        FINGERPRINTS[str(root / name)] = _hash(root / name)
    code, stderr, seconds = _unmask(root, attempt.argv, attempt.timeout)
    # "unmask: error: ..." from the commands, "unmask CMD: error: ..." (after the usage) from argparse
    errors = [line for line in stderr.splitlines() if re.match(r"unmask( [\w-]+)?: error:", line)]
    one_line = code in (0, None) or len(errors) >= 1 and all("\n" not in e for e in errors)
    message_ok = not attempt.message or any(attempt.message in e for e in errors)
    outputs = None if attempt.outputs is None else bool(attempt.outputs(root))
    return Row(attempt, code, "Traceback (most recent call last)" in stderr, one_line, message_ok, outputs, seconds)


def prepare(root: Path) -> None:
    """The workspace and the store that the merge and spray attempts work on."""
    build_workspace(root)
    code, stderr, _ = _unmask(root, STORE, 300)
    if code != 0:
        raise SystemExit(f"hostile.py: the reference store could not be made: {stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None, metavar="WORD", help="attempts whose name contains one of these words")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    chosen = [a for a in CATALOGUE if not args.only or any(w in a.name for w in args.only)]
    with tempfile.TemporaryDirectory(prefix="unmask-hostile-") as scratch:
        root = Path(args.keep or scratch)
        prepare(root)
        rows = []
        print(f"{'command':<10} {'exit':>4} {'traceback':>9} {'outputs':>8} {'ok':>3}  attempt", flush=True)
        for attempt in chosen:
            row = run_attempt(root, attempt)
            rows.append(row)
            outputs = "-" if row.outputs_ok is None else ("intact" if row.outputs_ok else "LOST")
            print(f"{attempt.command:<10} {'hang' if row.code is None else row.code:>4} {'yes' if row.traceback else 'no':>9} "
                  f"{outputs:>8} {'yes' if row.ok else 'NO':>3}  {attempt.name} ({row.seconds:.1f} s)", flush=True)
    totals = {
        "attempts": len(rows),
        "as expected": sum(r.ok for r in rows),
        "tracebacks": sum(r.traceback for r in rows),
        "hangs": sum(r.code is None for r in rows),
        "lost or damaged outputs": sum(r.outputs_ok is False for r in rows),
        "silent wrong answers": sum(r.silent_wrong for r in rows),
        "wrong exit code or message": sum((r.code not in r.attempt.codes or not r.message_ok or not r.one_line) for r in rows),
    }
    print("totals: " + ", ".join(f"{v} {k}" for k, v in totals.items()))
    return 0 if totals["as expected"] == totals["attempts"] else 1


if __name__ == "__main__":
    sys.exit(main())
