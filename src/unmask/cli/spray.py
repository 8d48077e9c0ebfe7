"""``unmask spray``: spectral relevance analysis of a store's heatmaps, written as JSON and a page.

    unmask attribute cleverhans:test --out runs/ch
    unmask spray runs/ch --class circle --out runs/ch-spray      # finds the tagged circles
    unmask spray runs/photos --class 3 --clusters 4 --embedding umap --out runs/photos-spray

Writes OUT/spray.json (eigenvalues, eigengaps, clusters, labels, embedding, scores) and OUT/index.html
(eigenvalue plot, embedding by cluster, each cluster's mean heatmap and nearest samples with overlays,
verification of a planted shortcut, context use when the store has boxes or masks).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._args import EXIT_OK, UsageError, positive_int
from ._run import run_command
from ._args import output_folder


DESCRIPTION = """\
Spectral relevance analysis (SpRAy, Lapuschkin et al. 2019): cluster the heatmaps of one class to
find the strategies the model uses, Clever Hans shortcuts among them."""

EPILOG = """\
steps: heatmaps summed over channels and pooled to --size; kNN graph (k = ceil(ln n)); normalised
Laplacian; smallest eigenvalues (scipy eigsh); the largest eigengap picks the number of clusters unless
--clusters is given; k-means (or --clusterer) on the spectral embedding; t-SNE for the picture.

exit codes: 0 done; 1 the analysis failed; 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask spray`` to ``parser``."""
    parser.add_argument("store", metavar="STORE", help="a store written by 'unmask attribute' (folder or merged .h5)")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for spray.json and index.html")
    parser.add_argument("--class", dest="cls", metavar="C", help="analyse the samples of this class (index or name; default: all samples)")
    parser.add_argument("--by", choices=("label", "prediction", "target"), default=None, help="how --class selects: by the data set's label (default when labels exist), the prediction, or the explained class")
    parser.add_argument("--clusters", type=positive_int, default=None, metavar="N", help="number of clusters (default: chosen by the eigengap)")
    parser.add_argument("--max-clusters", type=positive_int, default=10, metavar="N", help="largest number of clusters the eigengap may pick (default: 10)")
    parser.add_argument("--k", type=positive_int, default=None, help="neighbours in the affinity graph (default: ceil(ln n))")
    parser.add_argument("--size", type=positive_int, default=20, metavar="PX", help="side of the pooled heatmaps (default: 20)")
    parser.add_argument("--normalize", choices=("none", "l2", "max", "sum"), default="none", help="per-sample normalisation (default: none)")
    parser.add_argument("--clusterer", choices=("kmeans", "agglomerative", "dbscan", "hdbscan"), default="kmeans", help="clustering of the spectral embedding (default: kmeans)")
    parser.add_argument("--embedding", choices=("tsne", "umap", "spectral", "none"), default="tsne", help="2-D embedding for the picture (default: tsne)")
    parser.add_argument("--knn", choices=("auto", "exact", "faiss", "pynndescent"), default="auto", help="nearest-neighbour search (default: auto)")
    parser.add_argument("--truth", metavar="FIELD", help="a per-sample value in the store (e.g. 'tagged') to score the clusters against (default: 'tagged' when present)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (k-means, t-SNE, eigensolver start; default: 0)")
    parser.add_argument("--no-verify", action="store_true", help="skip the shortcut verification (Clever Hans data only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines per step on stderr")
    parser.add_argument("--no-context", action="store_true", help="skip context use (stores with boxes or masks only)")


def run(args: argparse.Namespace) -> int:
    """Run ``unmask spray`` for parsed ``args``; returns the exit code."""
    return run_command("spray", _run, args)


def select_class(store: Any, cls: str | None, by: str | None) -> tuple[np.ndarray, int | None, str]:
    """The boolean selection of ``--class`` and ``--by``, the class index and a description."""
    n = len(store)
    if cls is None:
        return np.ones(n, dtype=bool), None, "all samples"
    if by is None:
        by = "label" if (store.labels >= 0).any() else "prediction"
    classes = store.label_classes if by == "label" else store.classes  # folder labels have their own names
    if cls.lstrip("-").isdigit():
        index = int(cls)
    elif cls in classes:
        index = classes.index(cls)
    else:
        known = f"; classes: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}" if classes else " (the store has no class names; use an index)"
        raise UsageError(f"--class {cls!r} is neither a class index nor a class name{known}")
    values = {"label": store.labels, "prediction": store.predictions, "target": store.targets}[by]
    chosen = values == index
    name = classes[index] if 0 <= index < len(classes) else f"class {index}"
    if not chosen.any():
        raise UsageError(f"no sample of the store has {by} {index} ({name})")
    return chosen, index, f"{name} (by {by})"


def score_clusters(labels: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """ARI against ``truth`` and the cluster that best matches its positive group (recall, precision)."""
    from sklearn.metrics import adjusted_rand_score

    out: dict[str, Any] = {"ari": float(adjusted_rand_score(truth, labels))}
    positive = truth > 0
    if positive.any() and (~positive).any():
        best, best_f1 = None, -1.0
        for label in np.unique(labels):
            members = labels == label
            hit = float((members & positive).sum())
            recall, precision = hit / positive.sum(), hit / members.sum()
            f1 = 2 * recall * precision / (recall + precision) if hit else 0.0
            if f1 > best_f1:
                best, best_f1, out["recall"], out["precision"] = int(label), f1, recall, precision
        out["best_cluster"] = best
        out["f1"] = best_f1
    return out


def _images(store: Any) -> Any:
    """A function from data set index to PIL image for the report, or None when images cannot be had."""
    dataset = store.settings.get("dataset") or {}
    if dataset.get("type") == "cleverhans":
        from ..data.cleverhans import CleverHans

        data = CleverHans.from_description(dataset)
        return data.image
    paths = store.paths
    positions = {int(i): p for p, i in enumerate(store.indices)}
    height, width = store.input_shape[-2:] if len(store.input_shape) >= 2 else (224, 224)
    crop = None
    try:
        from ..models import zoo

        if store.settings.get("model") in zoo.names():
            crop = zoo.load(store.settings["model"]).preprocessing.crop
    except Exception:  # noqa: BLE001 - fall back to a centre square
        crop = None

    def image(index: int) -> Any:
        from ..data.images import load_image

        path = paths[positions[index]]
        if not path or not Path(path).is_file():
            return None
        picture = load_image(path)
        if crop is not None:
            return crop(picture)
        side = min(picture.size)
        left, top = (picture.size[0] - side) // 2, (picture.size[1] - side) // 2
        return picture.crop((left, top, left + side, top + side)).resize((width, height))

    return image


def _run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..analyze import spray_report
    from ..analyze.context import context_use
    from ..analyze.spray import spray
    from ..report import write_json
    from ..store import open_store

    started = time.perf_counter()
    store = open_store(args.store)
    output_folder(args.out)  # before the analysis, not after it
    if len(store) == 0:
        raise UsageError(f"{args.store} holds no samples yet; run 'unmask attribute' first")
    selection, cls, what = select_class(store, args.cls, args.by)
    selection &= store.predictions >= 0  # samples skipped by 'attribute --skip-bad' have no heatmap
    selection &= ~np.isin(store.indices, store.non_finite)  # nor have those whose relevance is NaN or infinite
    if selection.sum() < 4:
        raise UsageError(f"only {int(selection.sum())} samples of {what}; SpRAy needs at least 4")
    result = spray(
        store,
        n_clusters=args.clusters,
        k=args.k,
        size=args.size,
        normalize=None if args.normalize == "none" else args.normalize,
        max_clusters=args.max_clusters,
        clusterer=args.clusterer,
        embedding=None if args.embedding == "none" else args.embedding,
        knn=args.knn,
        select=selection,
        seed=args.seed,
        progress=not args.no_progress,
    )
    positions = np.flatnonzero(selection)
    truth_name = args.truth or ("tagged" if "tagged" in store.extra_fields else None)
    truth = scores = None
    if truth_name is not None:
        truth = store.extra(truth_name)[positions]
        scores = score_clusters(result.labels, truth)

    settings = store.settings
    dataset = settings.get("dataset") or {}
    verification = None
    if not args.no_verify and dataset.get("type") == "cleverhans" and settings.get("model") == "cleverhans":
        from ..data.cleverhans import CleverHans, verify
        from ..models.zoo import cleverhans_net

        verification = verify(cleverhans_net.load(), CleverHans.from_description(dataset))

    context = None
    if not args.no_context and ("box" in store.fields or "mask" in store.fields):
        everything = context_use(store)
        chosen = context_use(store, select=positions)
        per_cluster = {str(c.label): chosen.summary(np.flatnonzero(result.labels == c.label)) for c in result.clusters}
        context = {**everything.to_dict(), "per_cluster": per_cluster}

    out = Path(args.out)
    data = {
        "unmask_version": __version__,
        "store": str(store.path),
        "store_path": str(store.path.resolve()),  # found again from any working folder (unmask explore)
        "model": settings.get("model"),
        "method": settings.get("method"),
        "class": cls,
        "selection": what,
        **result.to_dict(),
        "eigengap": float(result.eigenvalues[result.n_clusters] - result.eigenvalues[result.n_clusters - 1])
        if result.n_clusters < len(result.eigenvalues) else None,
        "truth": truth_name,
        "scores": scores,
        "verification": verification,
        "context": context,
    }
    write_json(out / "spray.json", data)
    subtitle = (
        f"{len(result.labels)} heatmaps of {what} from {store.path} · model {settings.get('model')} · "
        f"method {settings.get('method')} · {settings.get('relevance')} relevance"
    )
    index = spray_report.write_report(
        out, result, store, title=f"SpRAy: {what}", subtitle=subtitle, image=_images(store), truth=truth,
        truth_name=truth_name, scores=scores, verification=verification, context=context,
    )
    seconds = time.perf_counter() - started
    summary = f"{result.n_clusters} clusters (sizes {', '.join(str(c.size) for c in result.clusters if c.label >= 0)})"
    if (result.labels < 0).any():
        summary += f", {int((result.labels < 0).sum())} noise samples"
    if scores is not None:
        summary += f", ARI {scores['ari']:.3f} against '{truth_name}'"
    print(f"unmask: {summary}; {seconds:.1f} s; open {index}", flush=True)
    return EXIT_OK
