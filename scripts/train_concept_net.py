"""Train ConceptNet (unmask.zoo.concept_net) on unmask's generated concept images and write its weights.

    python scripts/train_concept_net.py [--train 10000] [--epochs 6] [--threads 2]

The task is multi-label: which of the 21 concepts (11 colours, 5 textures, 5 shapes) cover at least
1% of a 64 x 64 GeneratedConcepts image. Training images: GeneratedConcepts(seed=1); held-out:
GeneratedConcepts(seed=2) (the dissection examples use seed 0). Writes
src/unmask/models/zoo/weights/concept_net.pt (state dict, float16) and concept_net.json (settings, held-out
accuracy per category, time). Deterministic on CPU for a given --threads.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unmask.data.concepts import GeneratedConcepts
from unmask.zoo.concept_net import CLASSES, MEAN, SIZE, STD, ConceptNet

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "unmask" / "models" / "zoo" / "weights"
#: A concept is "in" an image when it covers at least this fraction of the pixels.
PRESENT = 0.01


def presence(planes: np.ndarray, labels: int) -> np.ndarray:
    """``(P, H, W)`` label maps -> ``(labels - 1,)`` 0/1: which labels cover >= PRESENT of the image."""
    counts = np.zeros(labels, dtype=np.int64)
    for plane in planes:
        counts += np.bincount(plane.reshape(-1).astype(np.int64), minlength=labels)
    return (counts[1:] >= PRESENT * planes.shape[1] * planes.shape[2]).astype(np.float32)


def _render(job: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, start, stop = job
    data = GeneratedConcepts(n=stop, size=SIZE, seed=seed)
    images = np.empty((stop - start, 3, SIZE, SIZE), dtype=np.uint8)
    targets = np.empty((stop - start, len(data.labels) - 1), dtype=np.float32)
    for i in range(start, stop):
        image, planes, _ = data.render(i)
        images[i - start] = np.clip(np.rint(image.transpose(2, 0, 1) * 255), 0, 255).astype(np.uint8)
        targets[i - start] = presence(planes, len(data.labels))
    return images, targets


def render(n: int, seed: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of GeneratedConcepts(seed) as uint8 (N, 3, 64, 64) and their 0/1 concept targets."""
    chunk = 1000
    jobs = [(seed, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    with Pool(workers) as pool:
        parts = pool.map(_render, jobs)
    return torch.from_numpy(np.concatenate([p[0] for p in parts])), torch.from_numpy(np.concatenate([p[1] for p in parts]))


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


@torch.no_grad()
def scores(model: ConceptNet, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Label accuracy overall and per category (colour 11, texture 5, shape 5 labels)."""
    model.eval()
    right = []
    for start in range(0, len(images), 500):
        logits = model(normalise(images[start : start + 500]))
        right.append(((logits > 0).float() == targets[start : start + 500]).float())
    correct = torch.cat(right)
    return {
        "all": round(float(correct.mean()), 4),
        "color": round(float(correct[:, :11].mean()), 4),
        "texture": round(float(correct[:, 11:16].mean()), 4),
        "shape": round(float(correct[:, 16:].mean()), 4),
        "images_all_right": round(float(correct.min(1).values.mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="training images (default 10000)")
    parser.add_argument("--val", type=int, default=2000, help="held-out images (default 2000)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    train_x, train_y = render(args.train, seed=1, workers=args.threads)
    val_x, val_y = render(args.val, seed=2, workers=args.threads)
    print(f"rendered {len(train_x)} + {len(val_x)} images in {time.perf_counter() - started:.0f} s; "
          f"{float(train_y.mean()):.1%} of labels are 1", flush=True)

    model = ConceptNet().to(memory_format=torch.channels_last)  # faster convolutions on CPU
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps = args.epochs * math.ceil(len(train_x) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        total, seen, tick = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), args.batch):
            index = order[start : start + args.batch]
            x = normalise(train_x[index])
            flip = torch.rand(len(index), generator=generator) < 0.5  # mirror images have the same concepts
            x = torch.where(flip[:, None, None, None], x.flip(3), x).contiguous(memory_format=torch.channels_last)
            loss = F.binary_cross_entropy_with_logits(model(x), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        val = scores(model, val_x, val_y)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, held-out label accuracy {val} ({time.perf_counter() - tick:.0f} s)", flush=True)

    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, args.out / "concept_net.pt")
    # the accuracy of the weights as shipped (float16, read back as float32)
    shipped = ConceptNet()
    shipped.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    val = scores(shipped.eval(), val_x, val_y)
    baseline = (val_y == (val_y.mean(0, keepdim=True) > 0.5).float()).float()  # always the majority answer
    record = {
        "task": f"multi-label: which of {len(CLASSES)} concepts cover >= {PRESENT:.0%} of the image",
        "classes": CLASSES,
        "input_size": SIZE,
        "mean": list(MEAN),
        "std": list(STD),
        "train": {"data": f"GeneratedConcepts(n={args.train}, size={SIZE}, seed=1)", "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed},
        "val": f"GeneratedConcepts(n={args.val}, size={SIZE}, seed=2)",
        "val_accuracy": val["all"],
        "val_scores": val,
        "majority_baseline": {
            "all": round(float(baseline.mean()), 4),
            "color": round(float(baseline[:, :11].mean()), 4),
            "texture": round(float(baseline[:, 11:16].mean()), 4),
            "shape": round(float(baseline[:, 16:].mean()), 4),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    (args.out / "concept_net.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
