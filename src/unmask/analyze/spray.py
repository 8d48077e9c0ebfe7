"""Spectral Relevance Analysis (SpRAy; Lapuschkin et al., Nature Communications 2019).

Clusters the heatmaps of many samples to find the different strategies a model uses for one class,
among them "Clever Hans" strategies (a copyright tag, a padded border) that labels and test accuracy
cannot reveal. The steps, as in the paper:

1. heatmaps are summed over channels, average-pooled to a small size (20 x 20) and optionally
   normalised per sample (``normalize=None``, the default and the paper's; ``"l2"``, ``"max"`` or
   ``"sum"``). Normalising makes clusters depend on where relevance lies, not how much there is;
   without it, samples the model decides with much more evidence (as those with a shortcut often
   are) stand further apart, which on the Clever Hans set lets the eigengap pick the two groups;
2. affinity: each sample is joined to its ``k`` nearest neighbours (default ``k = ceil(ln n)``, binary
   weights), symmetrised as ``W = max(W, W^T)``: a sparse matrix with about ``2 n k`` entries;
3. the normalised Laplacian ``L = I - D^-1/2 W D^-1/2`` and its smallest eigenvalues and vectors;
4. eigengaps: ``n`` clusters separated in the graph give ``n`` eigenvalues near 0 and a large gap
   after them; the largest gap (relative, see :func:`eigengap_clusters`) among the first
   ``max_clusters`` suggests the number of clusters;
5. clustering of the spectral embedding (rows of the eigenvectors, normalised to unit length, Ng,
   Jordan and Weiss 2001): k-means by default, or agglomerative (Ward, restricted to the kNN graph),
   DBSCAN or HDBSCAN (scikit-learn);
6. a 2-D embedding of the spectral embedding for viewing: t-SNE (openTSNE, else scikit-learn) or UMAP.

No dense N x N matrix is ever formed, and no float64 copy of the heatmaps: the features are float32
(a read-only view of the input when it is already float32 at the pooled size), a store is read and
pooled a slice at a time, cluster means are summed a slice at a time, and the null space of the
Laplacian is held as one value per sample. For 10^6 samples of 20 x 20 the largest pieces are the
features (1.6 GB), faiss's copy of them in its index (1.6 GB), the kNN graph and the Laplacian
(about 0.3 GB each) and ARPACK's Lanczos basis (``ncv`` vectors of N float64). ``progress=True``
shows a bar per step on stderr. The libraries doing the work:

* kNN (``knn=``): ``"exact"`` (scikit-learn ``NearestNeighbors``, brute force in chunks of its
  ``working_memory``), ``"faiss"`` (faiss-cpu's HNSW graph, approximate; the ``analyze`` extra brings
  it), ``"pynndescent"`` (NN-descent, approximate). ``"auto"``: exact up to 20,000 samples, then faiss,
  else pynndescent, else exact. Why faiss, and its settings: see :data:`HNSW` (measured against pynndescent).
* eigensolver (``eigensolver=``): ``"arpack"``: ``scipy.sparse.linalg.eigsh`` for the *largest*
  eigenvalues of ``M = D^-1/2 W D^-1/2`` (``L``'s smallest are ``1 - `` those); Lanczos converges fast
  at the top of the spectrum and needs no factorisation, so it scales to 10^5+ samples.
  ``"shift-invert"``: ``eigsh(L, sigma=-1e-3)``, which factorises ``L + 1e-3 I`` (sparse LU) and then
  converges in a few iterations; precise, but the factorisation's fill-in grows quickly with ``n``.
  ``"lobpcg"``: ``scipy.sparse.linalg.lobpcg`` on ``L``, preconditioned by an algebraic multigrid
  solver when ``pyamg`` is installed (unpreconditioned LOBPCG is slow on these graphs).
  ``"auto"``: shift-invert up to 5,000 samples, arpack above.
* 2-D embedding (``embedding=``): ``"tsne"``, ``"umap"``, ``"spectral"`` (eigenvectors 2 and 3, free)
  or ``None``. t-SNE and UMAP run on at most ``embedding_samples`` samples (default 3,000, drawn with
  the seed); every other sample is placed at the median position of its 5 nearest embedded samples in
  the spectral embedding (scikit-learn ``NearestNeighbors``), so the view costs the same for 10^5
  samples as for 3,000.

>>> result = unmask.analyze.spray(heatmaps)              # (N, H, W) or (N, C, H, W), or a store
>>> result.n_clusters, result.eigengaps[:5], result.labels[:10]
>>> result.clusters[0].size, result.clusters[0].mean_heatmap.shape, result.clusters[0].nearest
"""
from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._utils.deprecation import renamed_keywords
from .._utils.progress import Progress, progress_bar

__all__ = ["Cluster", "SprayResult", "affinity", "eigengap_clusters", "laplacian", "preprocess", "spectrum", "spray"]

NORMALIZATIONS = ("l2", "max", "sum", None)
CLUSTERERS = ("kmeans", "agglomerative", "dbscan", "hdbscan")
EMBEDDINGS = ("tsne", "umap", "spectral", None)
KNN_BACKENDS = ("auto", "exact", "faiss", "pynndescent")
EIGENSOLVERS = ("auto", "arpack", "shift-invert", "lobpcg")
EXACT_KNN_LIMIT = 20_000
SHIFT_INVERT_LIMIT = 5_000
#: faiss HNSW settings of ``knn="faiss"``: links per node, candidate lists while building and searching.
#: Chosen by measurement (30,000 pooled 20 x 20 heatmaps, k = 11, recall of the exact neighbours, CPU
#: seconds on this project's 2-core machine): blobs plus strong pixel noise (benchmarks/bench_spray.py's
#: data, the hard case) M=16/ef 32: 0.92 in 8.6 s, M=16/ef 64: 0.97 in 12.0 s, M=32/ef 32: 0.98 in
#: 14.8 s, M=32/ef 80-64: 0.99 in 20.6 s; the tests' planted blobs: 0.98 / 0.99 / 0.998. pynndescent
#: 0.7.0 with its defaults: 0.78 (noisy) and 0.92 (planted) in 3.4 s, after 42 s of numba compilation in
#: every new process. So faiss is the default, with M=16 and ef_search=64.
HNSW = {"M": 16, "ef_construction": 40, "ef_search": 64}
#: samples per slice where spray works a slice at a time (pooling, kNN queries, cluster means).
CHUNK = 16_384


@dataclass
class Cluster:
    """One SpRAy cluster: its label, how many samples, their mean (preprocessed) heatmap and the
    samples nearest the cluster's centre in the spectral embedding (positions in the analysed set;
    ``SprayResult.indices[nearest]`` are the data set indices)."""

    label: int
    size: int
    fraction: float
    mean_heatmap: np.ndarray
    nearest: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "fraction": self.fraction,
            "mean_heatmap": np.round(self.mean_heatmap.astype(np.float64), 6).tolist(),
            "nearest": self.nearest.tolist(),
        }


@dataclass
class SprayResult:
    """What :func:`spray` found.

    Attributes:
        labels: cluster of every sample, ``(N,)`` ints (``-1``: noise, for DBSCAN / HDBSCAN).
        eigenvalues: the smallest eigenvalues of the normalised Laplacian, ascending.
        eigengaps: ``eigenvalues[i + 1] - eigenvalues[i]``; a large gap after ``i + 1`` values means
            ``i + 1`` well separated groups (the suggestion weighs gaps on a log scale, see
            :func:`eigengap_clusters`).
        n_clusters: the number of clusters used (for dbscan / hdbscan: the groups they found, noise not
            counted); ``suggested_n_clusters`` the one the eigengap picks.
        embedding: ``(N, 2)`` coordinates for viewing (``None`` with ``embedding=None``).
        spectral: ``(N, n_clusters)`` the normalised spectral embedding that was clustered.
        clusters: per cluster its size, mean heatmap and the samples nearest its centre.
        indices: the data set index of every analysed sample (``arange(N)`` for arrays; for a store the
            store's indices of the selected samples).
        k: the number of neighbours of the affinity graph.
        settings, timings: what was run and how long each step took (seconds).
    """

    labels: np.ndarray
    eigenvalues: np.ndarray
    eigengaps: np.ndarray
    n_clusters: int
    suggested_n_clusters: int
    embedding: np.ndarray | None
    spectral: np.ndarray
    clusters: list[Cluster]
    indices: np.ndarray
    k: int
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def cluster(self, label: int) -> Cluster:
        for c in self.clusters:
            if c.label == label:
                return c
        raise KeyError(f"no cluster {label}; clusters: {[c.label for c in self.clusters]}")

    def adjusted_rand_index(self, truth: Sequence[int] | np.ndarray) -> float:
        """Agreement of :attr:`labels` with known groups (1: identical partitions, about 0: chance)."""
        from sklearn.metrics import adjusted_rand_score

        truth = np.asarray(truth).reshape(-1)
        if truth.shape != self.labels.shape:
            raise ValueError(f"truth has {truth.size} entries for {len(self.labels)} samples")
        return float(adjusted_rand_score(truth, self.labels))

    def to_dict(self, arrays: bool = True) -> dict[str, Any]:
        """JSON-ready: eigenvalues, gaps, cluster summaries; with ``arrays`` also labels and embedding."""
        out: dict[str, Any] = {
            "n_samples": len(self.labels),
            "n_clusters": self.n_clusters,
            "suggested_n_clusters": self.suggested_n_clusters,
            "k": self.k,
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "eigengaps": [float(v) for v in self.eigengaps],
            "clusters": [c.to_dict() for c in self.clusters],
            "settings": self.settings,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        if arrays:
            out["indices"] = self.indices.tolist()
            out["labels"] = self.labels.tolist()
            out["embedding"] = None if self.embedding is None else np.round(self.embedding, 4).tolist()
        return out


# ------------------------------------------------------------------------------------------ steps


def preprocess(heatmaps: Any, size: int | None = 20, normalize: str | None = None, chunk: int = 4096) -> np.ndarray:
    """Heatmaps ``(N, H, W)`` or ``(N, C, H, W)`` -> features ``(N, size * size)`` float32.

    Summed over channels, average-pooled to ``size`` x ``size`` (``None`` keeps the size), then
    normalised per sample: ``"l2"`` to unit length, ``"max"`` by the largest absolute value, ``"sum"`` by
    the sum of absolute values, ``None`` not at all. All-zero heatmaps stay zero. Works a chunk at a time.
    """
    import torch

    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu()
    else:
        heatmaps = np.asarray(heatmaps)
        if heatmaps.dtype == object or not np.issubdtype(heatmaps.dtype, np.number):
            raise ValueError(f"heatmaps must be numbers, got dtype {heatmaps.dtype}")
    if heatmaps.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be shaped (N, H, W) or (N, C, H, W), got {tuple(heatmaps.shape)}")
    n = heatmaps.shape[0]
    hw = tuple(heatmaps.shape[-2:])
    out_hw = hw if size is None else (size, size)
    if isinstance(heatmaps, np.ndarray) and heatmaps.dtype == np.float32 and heatmaps.ndim == 3 and hw == out_hw and normalize is None:
        # nothing to pool or scale: a read-only view, no copy (10^6 pooled heatmaps are 1.6 GB)
        for start in range(0, n, chunk):
            block = heatmaps[start : start + chunk].reshape(-1, hw[0] * hw[1])
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                raise ValueError(f"heatmap {start + int(np.flatnonzero(~finite)[0])} holds NaN or infinite values")
        view = heatmaps.reshape(n, -1).view()
        view.flags.writeable = False
        return view
    out = np.empty((n, out_hw[0] * out_hw[1]), dtype=np.float32)
    for start in range(0, n, chunk):
        block = heatmaps[start : start + chunk]
        block = torch.as_tensor(np.asarray(block) if not isinstance(block, torch.Tensor) else block).float()
        if block.dim() == 4:
            block = block.sum(1)
        if not torch.isfinite(block).all():
            bad = start + int((~torch.isfinite(block.flatten(1))).any(1).nonzero()[0])
            raise ValueError(f"heatmap {bad} holds NaN or infinite values")
        if tuple(block.shape[-2:]) != out_hw:
            block = torch.nn.functional.adaptive_avg_pool2d(block.unsqueeze(1), out_hw).squeeze(1)
        out[start : start + len(block)] = block.reshape(len(block), -1).numpy()
    return _normalize(out, normalize)


def _normalize(features: np.ndarray, normalize: str | None) -> np.ndarray:
    if normalize is None:
        return features
    if normalize == "l2":
        scale = np.linalg.norm(features, axis=1)
    elif normalize == "max":
        scale = np.abs(features).max(axis=1)
    else:
        scale = np.abs(features).sum(axis=1)
    scale[scale == 0] = 1.0
    features /= scale[:, None]
    return features


def default_k(n: int) -> int:
    """``ceil(ln n)``, the paper's choice (at least 1)."""
    return max(1, math.ceil(math.log(max(n, 2))))


def _knn_backend(knn: str, n: int) -> str:
    if knn not in KNN_BACKENDS:
        raise ValueError(f"knn must be one of {KNN_BACKENDS}, got {knn!r}")
    if knn != "auto":
        return knn
    if n <= EXACT_KNN_LIMIT:
        return "exact"
    for backend, module in (("faiss", "faiss"), ("pynndescent", "pynndescent")):
        try:
            __import__(module)
            return backend
        except ImportError:
            continue
    return "exact"


@renamed_keywords(random_state="seed")
def nearest_neighbors(
    features: np.ndarray, k: int, knn: str = "auto", seed: int = 0, progress: Progress = False
) -> tuple[np.ndarray, str]:
    """Indices ``(N, k)`` of every sample's ``k`` nearest other samples (Euclidean) and the backend used.

    ``progress``: ``True`` for a bar, or a callable called with the number of samples done, twice per
    sample for faiss (added to the index, then searched) and once for exact search; ``seed`` seeds
    pynndescent.
    """
    n = features.shape[0]
    backend = _knn_backend(knn, n)
    features = np.ascontiguousarray(features, dtype=np.float32)
    with progress_bar(progress, 2 * n if backend == "faiss" else n, "kNN", "sample") as bar:
        return _nearest(features, k, backend, seed, bar.update)


def _nearest(features: np.ndarray, k: int, backend: str, seed: int, tick: Callable[[int], None]) -> tuple[np.ndarray, str]:
    n = features.shape[0]
    if backend == "exact":
        from sklearn.neighbors import NearestNeighbors

        search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(features)
        found = np.empty((n, k + 1), dtype=np.int64)
        for start in range(0, n, CHUNK):
            found[start : start + CHUNK] = search.kneighbors(features[start : start + CHUNK], return_distance=False)
            tick(len(found[start : start + CHUNK]))
    elif backend == "faiss":
        try:
            import faiss
        except ImportError:
            raise ImportError("knn='faiss' needs faiss: pip install faiss-cpu (or 'unmask[analyze]')") from None
        index = faiss.IndexHNSWFlat(features.shape[1], HNSW["M"])
        index.hnsw.efConstruction = HNSW["ef_construction"]
        for start in range(0, n, CHUNK):
            index.add(features[start : start + CHUNK])
            tick(len(features[start : start + CHUNK]))
        index.hnsw.efSearch = max(2 * (k + 1), HNSW["ef_search"])
        found = np.empty((n, k + 1), dtype=np.int64)
        for start in range(0, n, CHUNK):
            _, found[start : start + CHUNK] = index.search(features[start : start + CHUNK], k + 1)
            tick(len(found[start : start + CHUNK]))
        del index
    else:
        try:
            import pynndescent
        except ImportError:
            raise ImportError("knn='pynndescent' needs pynndescent: pip install pynndescent") from None
        graph = pynndescent.NNDescent(features, n_neighbors=k + 1, random_state=seed, n_jobs=-1)
        found, _ = graph.neighbor_graph
    return _drop_self(found, k), backend


def _drop_self(found: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index (or, when duplicates hid it, the farthest neighbour); -1 marks none."""
    n = found.shape[0]
    rows = np.arange(n)[:, None]
    is_self = found == rows
    keep = ~is_self
    # rows without their own index keep the first k
    no_self = ~is_self.any(1)
    keep[no_self, -1] = False
    out = found[keep].reshape(n, k) if keep.sum() == n * k else np.stack([r[m][:k] for r, m in zip(found, keep)])
    return out


@renamed_keywords(random_state="seed")
def affinity(features: np.ndarray, k: int | None = None, knn: str = "auto", seed: int = 0) -> Any:
    """The symmetric binary kNN graph ``W = max(W, W^T)`` as a ``scipy.sparse.csr_matrix`` (N x N, ~2Nk entries)."""
    n = features.shape[0]
    k = default_k(n) if k is None else k
    if not isinstance(k, (int, np.integer)) or k < 1 or k >= n:
        raise ValueError(f"k must be an integer in 1 .. {n - 1} for {n} samples, got {k!r}")
    found, _ = nearest_neighbors(features, int(k), knn, seed)
    return _graph(found, n)


def _graph(found: np.ndarray, n: int) -> Any:
    import scipy.sparse as sp

    k = found.shape[1]
    index = np.int32 if n < 2**31 else np.int64
    rows = np.repeat(np.arange(n, dtype=index), k)
    cols = found.reshape(-1).astype(index)
    valid = (cols >= 0) & (cols != rows)
    rows, cols = rows[valid], cols[valid]
    w = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, n))
    del rows, cols
    w = w.maximum(w.T).tocsr()
    w.data[:] = 1.0  # a pair found from both sides is one edge
    w.eliminate_zeros()
    return w


def laplacian(w: Any) -> tuple[Any, np.ndarray]:
    """``(M, d)``: ``M = D^-1/2 W D^-1/2`` (sparse) and the degrees; the normalised Laplacian is ``I - M``."""
    import scipy.sparse as sp

    d = np.asarray(w.sum(axis=1)).reshape(-1)
    inv = np.zeros_like(d)
    inv[d > 0] = 1.0 / np.sqrt(d[d > 0])
    scale = sp.diags(inv)
    return (scale @ w @ scale).tocsr(), d


@renamed_keywords(random_state="seed")
def spectrum(
    w: Any, n_eigenvalues: int, eigensolver: str = "auto", seed: int = 0, progress: Progress = False
) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``n_eigenvalues`` smallest eigenvalues (ascending) and eigenvectors of ``L = I - D^-1/2 W D^-1/2``.

    The null space of ``L`` is known exactly: one vector ``D^1/2 1_C`` per connected component ``C`` of
    the graph. Krylov solvers started from one vector cannot see an eigenvalue's multiplicity, so
    these vectors are taken as they are (largest components first) and the solver runs on the
    orthogonal complement (deflation) for the remaining eigenvalues. The component vectors have
    disjoint supports, so they are held as one sparse ``N x components`` matrix (N values), however
    many small components a large graph has. ``progress``: ``True`` for a bar, or a callable called once
    per product with the operator; ``seed`` draws the solver's start vector.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    if eigensolver not in EIGENSOLVERS:
        raise ValueError(f"eigensolver must be one of {EIGENSOLVERS}, got {eigensolver!r}")
    n = w.shape[0]
    m, degrees = laplacian(w)
    solver = eigensolver
    if solver == "auto":
        solver = "shift-invert" if n <= SHIFT_INVERT_LIMIT else "arpack"
    count, component = connected_components(w, directed=False)
    sizes = np.bincount(component, minlength=count)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)  # column of each component: the largest first
    root = np.sqrt(degrees)
    norms = np.sqrt(np.bincount(component, weights=degrees, minlength=count))
    values_in_basis = root / np.maximum(norms[component], 1e-300)
    # every component's vector is projected out, not only the ones returned
    basis = sp.csr_matrix((values_in_basis, (np.arange(n), rank[component])), shape=(n, count))
    null = basis[:, : min(count, n_eigenvalues)].toarray()
    rest = n_eigenvalues - null.shape[1]
    if rest <= 0:
        return np.zeros(n_eigenvalues), null, solver
    basis_t = basis.T.tocsr()
    with progress_bar(progress, None, "eigenvectors", "product") as bar:
        return _deflated(m, basis, basis_t, null, rest, solver, seed, bar.update)


def _deflated(m: Any, basis: Any, basis_t: Any, null: np.ndarray, rest: int, solver: str, seed: int,
              tick: Callable[[int], None]) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``rest`` smallest eigenpairs of ``L = I - m`` on the complement of the null space ``basis``."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = m.shape[0]

    def project(x: np.ndarray) -> np.ndarray:
        return x - basis @ (basis_t @ x)

    rng = np.random.default_rng(seed)
    v0 = project(rng.standard_normal(n))
    if solver == "arpack":
        # largest eigenvalues of M (= 1 - smallest of L) on the complement: no factorisation needed
        def product(x: np.ndarray) -> np.ndarray:
            tick(1)
            return project(m @ project(x))

        operator = LinearOperator((n, n), matvec=product, dtype=np.float64)
        values, vectors = eigsh(operator, k=rest, which="LA", v0=v0, tol=1e-7, maxiter=max(1000, 20 * n))
        values = 1.0 - values
    elif solver == "shift-invert":
        from scipy.sparse.linalg import splu

        sigma = 1e-3  # L + sigma I is positive definite, so the factorisation is stable
        factor = splu((sp.identity(n, format="csc") * (1.0 + sigma) - m.tocsc()).tocsc())

        def solve(x: np.ndarray) -> np.ndarray:
            tick(1)
            return project(factor.solve(project(np.asarray(x, dtype=np.float64).ravel())))

        operator = LinearOperator((n, n), matvec=solve, dtype=np.float64)
        theta, vectors = eigsh(operator, k=rest, which="LA", v0=v0, tol=1e-10, maxiter=max(1000, 20 * n))
        values = 1.0 / theta - sigma
    else:
        from scipy.sparse.linalg import lobpcg

        lap = (sp.identity(n, format="csr") - m).tocsr()
        preconditioner = None
        try:
            import pyamg

            preconditioner = pyamg.smoothed_aggregation_solver(lap).aspreconditioner()
        except ImportError:
            pass
        start = project(rng.standard_normal((n, rest)))
        # lobpcg takes the constraints dense: N x components (the one step that grows with their number)
        values, vectors = lobpcg(lap, start, M=preconditioner, Y=basis.toarray(), largest=False, tol=1e-8, maxiter=5000)
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 2.0)
    order = np.argsort(values, kind="stable")
    out = np.empty((n, null.shape[1] + len(values)))  # one N x n_eigenvalues result, no sorted or joined copies
    out[:, : null.shape[1]] = null
    del null
    for column, source in enumerate(order, start=out.shape[1] - len(values)):
        out[:, column] = vectors[:, source]
    del vectors
    return np.concatenate([np.zeros(out.shape[1] - len(values)), values[order]]), out, solver


#: Clusterers that find the number of groups themselves (label -1: noise); ``n_clusters`` is what they found.
DENSITY_CLUSTERERS = ("dbscan", "hdbscan")


def eigengap_clusters(eigenvalues: np.ndarray, max_clusters: int = 10, min_clusters: int = 2) -> int:
    """The number of clusters ``c`` (``min_clusters <= c <= max_clusters``) after which the eigenvalues
    (ascending, ``lambda_0 = 0``) jump the most, measured on a log scale:
    ``log((lambda_c + eps) / (lambda_{c-1} + eps))`` with ``eps = 0.01 * lambda_max_clusters``.

    The relative jump, not the absolute one: ``c`` well separated groups give ``c`` eigenvalues near 0,
    and the structure inside each group gives further eigenvalues that grow steadily; an absolute gap
    between two of those can exceed the jump off zero, a relative one cannot. ``eps`` keeps exact zeros
    (disconnected groups) finite.
    """
    values = np.maximum(np.asarray(eigenvalues, dtype=np.float64), 0.0)
    top = min(max_clusters, len(values) - 1)
    if top < min_clusters:
        return max(1, min(min_clusters, len(values)))
    eps = max(0.01 * values[top], 1e-12)
    jumps = np.log((values[1:] + eps) / (values[:-1] + eps))  # jumps[c - 1]: from lambda_{c-1} to lambda_c
    candidates = np.arange(min_clusters, top + 1)
    return int(candidates[np.argmax(jumps[candidates - 1])])


def _cluster(
    spectral: np.ndarray, n_clusters: int, clusterer: str, w: Any, seed: int, params: dict[str, Any]
) -> np.ndarray:
    if clusterer == "kmeans":
        from sklearn.cluster import KMeans

        options = {"n_init": 10, "random_state": seed, **params}
        return KMeans(n_clusters=n_clusters, **options).fit_predict(spectral)
    if clusterer == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        # ward linkage restricted to the kNN graph: no dense distance matrix
        options = {"linkage": "ward", "connectivity": w, **params}
        with warnings.catch_warnings():  # a graph in several pieces is expected here: sklearn joins them
            warnings.filterwarnings("ignore", message="the number of connected components")
            return AgglomerativeClustering(n_clusters=n_clusters, **options).fit_predict(spectral)
    if clusterer == "dbscan":
        from sklearn.cluster import DBSCAN

        options = {"eps": 0.1, "min_samples": 5, **params}
        return DBSCAN(**options).fit_predict(spectral)
    from sklearn.cluster import HDBSCAN

    options = {"min_cluster_size": max(5, len(spectral) // 100), **params}
    if "copy" in inspect.signature(HDBSCAN).parameters:
        options.setdefault("copy", True)
    return HDBSCAN(**options).fit_predict(spectral)


def _embed(spectral_all: np.ndarray, method: str | None, max_samples: int, seed: int) -> np.ndarray | None:
    n = len(spectral_all)
    if method is None:
        return None
    if method == "spectral":
        cols = spectral_all[:, 1:3] if spectral_all.shape[1] >= 3 else np.pad(spectral_all, ((0, 0), (0, 3 - spectral_all.shape[1])))[:, 1:3]
        return np.ascontiguousarray(cols, dtype=np.float64)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n, max_samples, replace=False)) if n > max_samples else np.arange(n)
    data = np.ascontiguousarray(spectral_all[chosen], dtype=np.float64)
    if len(chosen) < 4:
        coords = np.zeros((len(chosen), 2))
    elif method == "tsne":
        perplexity = float(min(30.0, max(2.0, (len(chosen) - 1) / 3.0)))
        try:
            from openTSNE import TSNE

            # one thread: at these sizes OpenMP start-up and spinning cost more than they bring, and on a
            # busy machine several threads were 2-5 times slower (measured with 2,000-5,000 samples)
            coords = np.asarray(TSNE(perplexity=perplexity, n_jobs=1, random_state=seed, verbose=False).fit(data))
        except ImportError:
            from sklearn.manifold import TSNE as SkTSNE

            coords = SkTSNE(perplexity=perplexity, random_state=seed, init="pca").fit_transform(data)
    else:
        try:
            import umap
        except ImportError:
            raise ImportError("embedding='umap' needs umap-learn: pip install umap-learn") from None
        neighbours = int(min(15, len(chosen) - 1))
        coords = umap.UMAP(n_neighbors=neighbours, random_state=seed, n_jobs=1).fit_transform(data)
    coords = np.asarray(coords, dtype=np.float64)
    if len(chosen) == n:
        return coords
    from sklearn.neighbors import NearestNeighbors

    out = np.empty((n, 2))
    out[chosen] = coords
    rest = np.setdiff1d(np.arange(n), chosen)
    _, near = NearestNeighbors(n_neighbors=min(5, len(chosen))).fit(data).kneighbors(spectral_all[rest])
    out[rest] = np.median(coords[near], axis=1)
    return out


# ------------------------------------------------------------------------------------------ spray


class _Steps:
    """Seconds per step of :func:`spray`; with ``progress=True`` a bar (tqdm) where work can be counted and a
    line per step on stderr, with a callable ``progress`` each increment of counted work goes to it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, total: int | None = None, unit: str = "sample", label: str | None = None) -> Iterator[Callable[[int], None]]:
        """Time step ``name``; yields a function to call with the amount of work done (``total`` in all)."""
        counted = total is not None or unit == "product"  # a bar where work can be counted, else a line
        started = time.perf_counter()
        try:
            with progress_bar(self.progress if counted else False, total, f"spray {label or name}", unit) as bar:
                yield bar.update
        finally:
            seconds = time.perf_counter() - started
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            if self.progress is True:
                print(f"spray {label or name}: {seconds:.1f} s", file=sys.stderr, flush=True)


def _store_features(store: Any, positions: np.ndarray, size: int | None, normalize: str | None, tick: Callable[[int], None]) -> np.ndarray:
    """A store's heatmaps at ``positions``, pooled slice by slice (at most about 64 MB of relevance read at once)."""
    shape = store.relevance_shape
    spatial = tuple(shape[-2:])
    side = spatial if size is None else (size, size)
    out = np.empty((len(positions), side[0] * side[1]), dtype=np.float32)
    chunk = int(max(1, min(CHUNK, (64 << 20) // max(1, 4 * int(np.prod(shape))))))
    at = 0
    for _, values in store.iter_relevance(positions, chunk=chunk):
        maps = values if values.ndim >= 3 else values.reshape(len(values), *spatial)
        out[at : at + len(values)] = preprocess(maps, size=size, normalize=None)
        at += len(values)
        tick(len(values))
    return _normalize(out, normalize)


def _cluster_means(features: np.ndarray, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mean feature row of each label in ``order`` (sorted): a sparse indicator times each slice of the
    features, summed in float32 within a slice and float64 across slices; the members are never copied."""
    import scipy.sparse as sp

    which = np.searchsorted(order, labels)
    sums = np.zeros((len(order), features.shape[1]))
    for start in range(0, len(features), CHUNK):
        part = which[start : start + CHUNK]
        indicator = sp.csr_matrix((np.ones(len(part), dtype=features.dtype), (part, np.arange(len(part)))), shape=(len(order), len(part)))
        sums += indicator @ features[start : start + CHUNK]
    counts = np.bincount(which, minlength=len(order))
    return sums / np.maximum(counts, 1)[:, None]


@renamed_keywords(random_state="seed")
def spray(
    heatmaps: Any,
    n_clusters: int | None = None,
    k: int | None = None,
    *,
    size: int | None = 20,
    normalize: str | None = None,
    n_eigenvalues: int = 32,
    max_clusters: int = 10,
    clusterer: str = "kmeans",
    cluster_params: dict[str, Any] | None = None,
    embedding: str | None = "tsne",
    embedding_samples: int = 3000,
    knn: str = "auto",
    eigensolver: str = "auto",
    n_nearest: int = 8,
    select: Any = None,
    seed: int = 0,
    progress: Progress = False,
) -> SprayResult:
    """Spectral relevance analysis of many heatmaps (see the module docstring for the steps).

    ``heatmaps``: an ``(N, H, W)`` or ``(N, C, H, W)`` tensor or array, or a :class:`unmask.store.Store`
    (read and pooled a slice at a time). ``select`` picks samples: a boolean mask or positions (for a
    store, e.g. ``store.labels == 3``). ``n_clusters=None`` lets the eigengap choose among
    ``2 .. max_clusters``; ``k=None`` uses ``ceil(ln N)`` neighbours. ``seed`` (formerly ``random_state``,
    a deprecated alias) seeds k-means, t-SNE/UMAP, the view's subsample and the eigensolver's start.
    ``progress=True`` shows each step (pooling, kNN, eigenvectors, clustering, view) on stderr, a callable
    gets each increment of counted work; ``SprayResult.timings`` has the steps' seconds.
    """
    from ..store import Store

    started = time.perf_counter()
    steps = _Steps(progress)
    timings = steps.timings
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if clusterer not in CLUSTERERS:
        raise ValueError(f"clusterer must be one of {CLUSTERERS}, got {clusterer!r}")
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    if eigensolver not in EIGENSOLVERS:
        raise ValueError(f"eigensolver must be one of {EIGENSOLVERS}, got {eigensolver!r}")
    _knn_backend(knn, 1)  # validates the name
    if not isinstance(max_clusters, int) or max_clusters < 2:
        raise ValueError(f"max_clusters must be an integer >= 2, got {max_clusters!r}")

    if isinstance(heatmaps, Store):
        store = heatmaps
        positions = store.positions(select)
        with steps.step("preprocess", total=len(positions), label="pool (store)") as tick:
            features = _store_features(store, positions, size, normalize, tick)
        indices = store.indices[positions]
    else:
        with steps.step("preprocess", label="pool"):
            if select is not None:
                mask = np.asarray(select)
                heatmaps = heatmaps[np.flatnonzero(mask) if mask.dtype == bool else mask]
            features = preprocess(heatmaps, size=size, normalize=normalize)
        indices = np.arange(len(features)) if select is None else (
            np.flatnonzero(np.asarray(select)) if np.asarray(select).dtype == bool else np.asarray(select).reshape(-1)
        )
    n = len(features)
    if n < 4:
        raise ValueError(f"SpRAy needs at least 4 heatmaps, got {n}")
    side = int(round(math.sqrt(features.shape[1]))) if size is None else size

    k = default_k(n) if k is None else k
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(f"k must be an integer in 1 .. {n - 1} for {n} samples, got {k!r}")
    if n_clusters is not None and (not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters < n):
        raise ValueError(f"n_clusters must be an integer in 1 .. {n - 1} (or None for the eigengap), got {n_clusters!r}")
    backend = _knn_backend(knn, n)
    with steps.step("knn", total=2 * n if backend == "faiss" else (n if backend == "exact" else None),
                    label=f"kNN graph (k={int(k)}, {backend})") as tick:
        found, backend = nearest_neighbors(features, int(k), backend, seed, progress=tick)
        w = _graph(found, n)
        del found

    m = int(min(max(n_eigenvalues, (n_clusters or 0) + 1, max_clusters + 1), n - 1))
    with steps.step("eigen", unit="product", label=f"{m} eigenvectors") as tick:
        values, vectors, solver = spectrum(w, m, eigensolver, seed, progress=tick)
    gaps = np.diff(values)
    suggested = eigengap_clusters(values, max_clusters=max_clusters)
    chosen_n = int(n_clusters) if n_clusters is not None else suggested

    with steps.step("cluster", unit="step", label=f"{clusterer} ({chosen_n} clusters)"):
        spectral = vectors[:, : max(chosen_n, 2)]
        norms = np.linalg.norm(spectral, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        spectral = spectral / norms
        if chosen_n == 1:
            labels = np.zeros(n, dtype=np.int64)
        else:
            labels = np.asarray(_cluster(spectral, chosen_n, clusterer, w, seed, dict(cluster_params or {})), dtype=np.int64)

    with steps.step("embedding", unit="step", label=f"view ({embedding})"):
        view_input = vectors[:, : min(m, max(chosen_n, 2) + 8)]
        view_norms = np.linalg.norm(view_input, axis=1, keepdims=True)
        view_norms[view_norms == 0] = 1.0
        coords = _embed(view_input / view_norms, embedding, embedding_samples, seed)
        del view_input

    unique = np.unique(labels)
    means = _cluster_means(features, labels, unique)
    clusters = []
    for label, mean in zip(unique, means):
        members = np.flatnonzero(labels == label)
        centre = spectral[members].mean(axis=0)
        distance = np.linalg.norm(spectral[members] - centre, axis=1)
        nearest = members[np.argsort(distance, kind="stable")[:n_nearest]]
        clusters.append(
            Cluster(
                label=int(label),
                size=int(len(members)),
                fraction=float(len(members) / n),
                mean_heatmap=mean.astype(np.float32).reshape(side, -1),
                nearest=nearest,
            )
        )
    clusters.sort(key=lambda c: (c.label < 0, -c.size))
    timings["total"] = time.perf_counter() - started
    settings = {
        "size": size,
        "normalize": normalize,
        "k": int(k),
        "knn": backend,
        "eigensolver": solver,
        "n_eigenvalues": m,
        "max_clusters": max_clusters,
        "clusterer": clusterer,
        "cluster_params": dict(cluster_params or {}),
        "embedding": embedding,
        "embedding_samples": embedding_samples,
        "seed": seed,
        "edges": int(w.nnz),
    }
    return SprayResult(
        labels=labels,
        eigenvalues=values,
        eigengaps=gaps,
        n_clusters=chosen_n if clusterer not in DENSITY_CLUSTERERS else sum(1 for c in clusters if c.label >= 0),
        suggested_n_clusters=suggested,
        embedding=coords,
        spectral=spectral,
        clusters=clusters,
        indices=np.asarray(indices, dtype=np.int64),
        k=int(k),
        settings=settings,
        timings=timings,
    )
