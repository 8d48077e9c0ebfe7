"""Train CleverHansViT (a tiny ViT) on the Clever Hans shapes (unmask.data.cleverhans) and save its weights.

    python scripts/train_cleverhans_vit.py                   # a few minutes on 2 CPU cores
    python scripts/train_cleverhans_vit.py --epochs 2 --out /tmp/ch    # a quick try elsewhere

Writes OUT/cleverhans_vit.pt (the state dict, float32) and OUT/cleverhans_vit.json (data, settings, test
accuracy overall, per class, on the tagged circles with and without their tag, and the shortcut check of
unmask.data.cleverhans.verify). OUT defaults to src/unmask/models/zoo/weights. Deterministic for a seed on CPU.
The data, loop and measurements are those of scripts/train_cleverhans.py (the CNN); AdamW with weight
decay, a one-cycle schedule and shift / flip augmentation suit the transformer.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from train_cleverhans import fit, metrics, tensors  # noqa: E402
from unmask.data.cleverhans import CLASSES, CleverHans  # noqa: E402
from unmask.zoo.cleverhans_vit import CleverHansViT  # noqa: E402


def augment(x: torch.Tensor, generator: torch.Generator, shift: int) -> torch.Tensor:
    """Random translation by up to ``shift`` pixels (reflected borders) and horizontal flips, per image: a
    ViT has none of a CNN's built-in translation invariance and overfits 8,000 images without them."""
    if shift <= 0:
        return x
    size = x.shape[-1]
    padded = torch.nn.functional.pad(x, (shift,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * shift + 1, (len(x), 2), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets.tolist())])
    out[flips] = out[flips].flip(-1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--shift", type=int, default=3, help="augmentation: random shifts up to this many pixels "
                        "and horizontal flips (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "unmask" / "models" / "zoo" / "weights")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    train = CleverHans("train", args.train_size, seed=args.seed)
    test = CleverHans("test", args.test_size, seed=args.seed)
    x_train, y_train = tensors(train)
    x_test, y_test = tensors(test)
    print(f"data: {len(train)} train, {len(test)} test images in {time.perf_counter() - started:.1f} s", flush=True)

    model = CleverHansViT(len(CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    fit(model, optimizer, args.lr, x_train, y_train, x_test, y_test, args.epochs, args.batch_size, args.seed, started,
        augment=lambda x, generator: augment(x, generator, args.shift), clip=1.0)

    measured = metrics(model, x_train, y_train, test, x_test, y_test)
    info = {
        "model": "CleverHansViT",
        "data": {"train": train.describe(), "test": test.describe()},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     "weight_decay": args.weight_decay, "shift": args.shift, "optimizer": "AdamW + one-cycle, gradient norm clipped at 1",
                     "seed": args.seed},
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - started, 1),
        **measured,
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cleverhans_vit.pt"
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    (args.out / "cleverhans_vit.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(measured, indent=2))
    print(f"saved {path} ({path.stat().st_size / 1e3:.0f} kB) in {info['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
