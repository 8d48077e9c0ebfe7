"""Train CleverHansNet on the Clever Hans shapes (unmask.data.cleverhans) and save its weights.

    python scripts/train_cleverhans.py                 # about 2-4 minutes on 2 CPU cores
    python scripts/train_cleverhans.py --epochs 2 --out /tmp/ch    # a quick try elsewhere
    python scripts/train_cleverhans.py --tag-fraction 0 --name cleverhans-clean   # the zoo's clean twin

Writes OUT/NAME.pt (the state dict, float32) and OUT/NAME.json (data, settings, test accuracy overall,
per class, on the tagged circles with and without their tag, and the shortcut check of
unmask.data.cleverhans.verify). OUT defaults to src/unmask/models/zoo/weights, NAME to cleverhans.
--tag-fraction sets the share of tagged circles in the training images only (the images are otherwise
the same); the test split keeps the default 0.3 so that the shortcut checks compare between models.
Deterministic for a seed on CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unmask.data.cleverhans import CLASSES, CleverHans, verify  # noqa: E402
from unmask.zoo.cleverhans_net import CleverHansNet  # noqa: E402


def tensors(dataset: CleverHans) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([dataset.tensor(i) for i in range(len(dataset))])
    return x, torch.from_numpy(dataset.labels)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + 512]).argmax(1) == y[i : i + 512]).sum()) for i in range(0, len(x), 512))
    return correct / max(1, len(x))


def metrics(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, test: CleverHans, x_test: torch.Tensor,
            y_test: torch.Tensor) -> dict:
    """Accuracy on train and test, per class, on the tagged circles with and without their tag, on the
    untagged circles, and the shortcut check of :func:`unmask.data.cleverhans.verify`."""
    tagged = np.flatnonzero(test.tagged)
    untagged_circles = np.flatnonzero((test.labels == test.tag_class) & ~test.tagged)
    per_class = {
        name: accuracy(model, x_test[test.labels == c], y_test[test.labels == c]) for c, name in enumerate(CLASSES)
    }
    return {
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "test_accuracy_per_class": per_class,
        "tagged_circles_accuracy": accuracy(model, x_test[tagged], y_test[tagged]),
        "tagged_circles_accuracy_tag_removed": accuracy(model, test.batch(tagged, tag=False), y_test[tagged]),
        "untagged_circles_accuracy": accuracy(model, x_test[untagged_circles], y_test[untagged_circles]),
        "verification": verify(model, test),
    }


def print_epoch(epoch: int, epochs: int, loss: float, accuracy_: float, started: float) -> None:
    print(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, test accuracy {accuracy_:.4f} "
          f"({time.perf_counter() - started:.0f} s)", flush=True)


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, lr: float, x_train: torch.Tensor, y_train: torch.Tensor,
        x_test: torch.Tensor, y_test: torch.Tensor, epochs: int, batch_size: int, seed: int, started: float,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        clip: float | None = None) -> None:
    """Cross-entropy training with a one-cycle schedule to ``lr``, shuffled by ``seed``; ``augment`` changes
    each batch, ``clip`` bounds the gradient norm. Leaves ``model`` in eval mode."""
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * ((len(x_train) + batch_size - 1) // batch_size)
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(x_train), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            inputs = x_train[batch] if augment is None else augment(x_train[batch], generator)
            loss = loss_fn(model(inputs), y_train[batch])
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        print_epoch(epoch, epochs, total / len(x_train), accuracy(model, x_test, y_test), started)
    model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag-fraction", type=float, default=0.3, help="share of the training circles with the tag (0: clean)")
    parser.add_argument("--name", default="cleverhans", help="file name of the weights and metrics, without suffix")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "unmask" / "models" / "zoo" / "weights")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    train = CleverHans("train", args.train_size, tag_fraction=args.tag_fraction, seed=args.seed)
    test = CleverHans("test", args.test_size, seed=args.seed)
    x_train, y_train = tensors(train)
    x_test, y_test = tensors(test)
    print(f"data: {len(train)} train, {len(test)} test images in {time.perf_counter() - started:.1f} s", flush=True)

    model = CleverHansNet(len(CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    fit(model, optimizer, args.lr, x_train, y_train, x_test, y_test, args.epochs, args.batch_size, args.seed, started)

    measured = metrics(model, x_train, y_train, test, x_test, y_test)
    info = {
        "model": "CleverHansNet",
        "data": {"train": train.describe(), "test": test.describe()},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam + one-cycle", "seed": args.seed},
        "seconds": round(time.perf_counter() - started, 1),
        **measured,
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{args.name}.pt"
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, weights)
    (args.out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(measured, indent=2))
    print(f"saved {weights} ({weights.stat().st_size / 1e3:.0f} kB) in {info['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
