"""SpRAy: planted clusters are found, the eigengap counts them, the spectrum is right, nothing is dense."""
from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch


from unmask.analyze.context import context_use
from unmask.analyze.spray import affinity, default_k, eigengap_clusters, laplacian, preprocess, spectrum, spray

CENTRES = np.array([[4, 4], [15, 5], [9, 15], [15, 15], [4, 15]], dtype=float)


def planted(n: int, clusters: int, size: int = 20, seed: int = 0, channels: int | None = None):
    """Heatmaps with a blob at one of ``clusters`` places (jittered) plus noise, and the true groups."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.arange(n) % clusters
    where = CENTRES[truth] * size / 20 + rng.normal(scale=0.7, size=(n, 2))
    maps = np.exp(-((xx[None] - where[:, 0, None, None]) ** 2 + (yy[None] - where[:, 1, None, None]) ** 2) / (2 * 1.5**2))
    maps = maps + rng.normal(scale=0.05, size=maps.shape)
    if channels:
        maps = np.repeat(maps[:, None] / channels, channels, axis=1)
    return maps.astype(np.float32), truth


@pytest.mark.parametrize("clusters", [2, 3, 5])
def test_planted_clusters_are_recovered_and_the_eigengap_counts_them(clusters):
    maps, truth = planted(300, clusters)
    result = spray(maps, embedding=None)
    assert result.n_clusters == result.suggested_n_clusters == clusters
    assert result.adjusted_rand_index(truth) == pytest.approx(1.0)
    assert result.eigenvalues[0] == pytest.approx(0.0, abs=1e-8)
    assert np.all(np.diff(result.eigenvalues) >= -1e-9)
    assert result.eigengaps[clusters - 1] == result.eigenvalues[clusters] - result.eigenvalues[clusters - 1]
    assert result.k == math.ceil(math.log(300))
    assert sorted(c.size for c in result.clusters) == sorted(np.bincount(truth).tolist())
    for cluster in result.clusters:
        assert cluster.mean_heatmap.shape == (20, 20)
        assert len(cluster.nearest) == 8 and np.all(result.labels[cluster.nearest] == cluster.label)
        # the mean heatmap's peak sits at the planted centre of that group
        group = np.bincount(truth[result.labels == cluster.label]).argmax()
        peak = np.unravel_index(cluster.mean_heatmap.argmax(), (20, 20))
        assert abs(peak[1] - CENTRES[group][0]) <= 1.5 and abs(peak[0] - CENTRES[group][1]) <= 1.5


def test_inputs_channels_tensors_pooling_and_selection_agree():
    maps, truth = planted(240, 3, size=40)
    base = spray(maps, embedding=None)
    with_channels = spray(torch.from_numpy(planted(240, 3, size=40, channels=3)[0]), embedding=None)
    np.testing.assert_array_equal(base.labels, with_channels.labels)
    assert base.adjusted_rand_index(truth) == pytest.approx(1.0)
    features = preprocess(maps, size=20)
    manual = maps.reshape(240, 20, 2, 20, 2).mean(axis=(2, 4)).reshape(240, -1)
    np.testing.assert_allclose(features, manual, rtol=1e-5, atol=1e-6)
    l2 = preprocess(maps, size=20, normalize="l2")
    np.testing.assert_allclose(np.linalg.norm(l2, axis=1), 1.0, rtol=1e-5)
    picked = spray(maps, select=truth != 2, embedding=None)
    assert len(picked) == 160 and picked.n_clusters == 2
    np.testing.assert_array_equal(picked.indices, np.flatnonzero(truth != 2))


def test_affinity_is_sparse_symmetric_binary_knn_and_the_spectrum_matches_a_dense_reference():
    import scipy.sparse as sp

    maps, _ = planted(200, 3)
    features = preprocess(maps)
    k = default_k(200)
    w = affinity(features, k)
    assert sp.issparse(w) and w.shape == (200, 200)
    assert (w != w.T).nnz == 0 and set(np.unique(w.data)) == {1.0}
    assert w.diagonal().sum() == 0
    assert 200 * k <= w.nnz <= 2 * 200 * k
    # every sample is joined to its k exact nearest neighbours
    distances = ((features[:, None] - features[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    dense_w = w.toarray()
    assert all(dense_w[i, nearest[i]].all() for i in range(200))
    # the smallest eigenvalues of L = I - D^-1/2 W D^-1/2, from both solvers, against numpy on the dense matrix
    m, degrees = laplacian(w)
    reference = np.linalg.eigvalsh(np.eye(200) - m.toarray())[:8]
    for solver in ("arpack", "shift-invert", "lobpcg"):
        values, vectors, used = spectrum(w, 8, solver)
        assert used == solver
        np.testing.assert_allclose(values, reference, atol=1e-5 if solver != "lobpcg" else 1e-3)
        assert vectors.shape == (200, 8)


def test_eigengap_rule():
    assert eigengap_clusters(np.array([0, 0, 0, 0.03, 0.031, 0.033, 0.034, 0.06, 0.07, 0.08, 0.09, 0.1])) == 3
    # a larger absolute gap further up does not win over the jump off zero
    assert eigengap_clusters(np.array([0, 0.0, 0.028, 0.0287, 0.033, 0.0345, 0.065, 0.07, 0.08, 0.09, 0.1, 0.11])) == 2
    assert eigengap_clusters(np.array([0, 1e-3, 2e-3, 0.05, 0.06, 0.07]), max_clusters=5) == 3
    assert eigengap_clusters(np.array([0, 0.01, 0.02, 0.03, 0.2, 0.21]), max_clusters=5) == 4
    assert eigengap_clusters(np.array([0, 0.01, 0.02, 0.03, 0.2, 0.21]), max_clusters=3) == 2  # capped


@pytest.mark.parametrize("clusterer", ["agglomerative", "dbscan", "hdbscan"])
def test_other_clusterers_find_the_planted_groups(clusterer):
    maps, truth = planted(300, 3)
    result = spray(maps, clusterer=clusterer, embedding=None)
    assert result.adjusted_rand_index(truth) > 0.95


def test_embeddings_and_to_dict():
    maps, truth = planted(400, 3)
    tsne = spray(maps, embedding="tsne", embedding_samples=150)  # 150 embedded, 250 placed by their neighbours
    assert tsne.embedding.shape == (400, 2) and np.isfinite(tsne.embedding).all()
    # the view keeps groups apart: each sample's nearest point in 2-D is mostly of its own group
    d = ((tsne.embedding[:, None] - tsne.embedding[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (truth[d.argmin(1)] == truth).mean() > 0.95
    spectral = spray(maps, embedding="spectral", n_clusters=3)
    assert spectral.embedding.shape == (400, 2) and spectral.n_clusters == 3
    data = json.loads(json.dumps(spectral.to_dict()))
    assert data["n_clusters"] == 3 and len(data["labels"]) == 400 and len(data["clusters"]) == 3
    assert spray(maps, embedding=None).embedding is None


class PlantedImages(torch.utils.data.Dataset):
    """The planted heatmaps of :func:`planted` as 3-channel images with their group as the label."""

    def __init__(self, n: int, groups: int, size: int):
        self.maps, self.truth = planted(n, groups, size=size)

    def __len__(self):
        return len(self.maps)

    def __getitem__(self, i):
        return torch.from_numpy(self.maps[i])[None].repeat(3, 1, 1), int(self.truth[i])


def test_spray_reads_a_store(tmp_path):
    from unmask.store import attribute

    data = PlantedImages(120, 2, size=8)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 2))
    store = attribute(model, data, tmp_path / "s", method="gradient_x_input", target=0, shard_size=50, progress=False)
    from_store = spray(store, size=8, embedding=None)
    from_array = spray(store.relevance(), size=8, embedding=None)
    np.testing.assert_array_equal(from_store.labels, from_array.labels)
    selected = spray(store, select=store.labels == 1, size=8, embedding=None, n_clusters=2)
    np.testing.assert_array_equal(selected.indices, np.flatnonzero(data.truth == 1))


def test_bad_input_is_refused_with_a_clear_message():
    maps, _ = planted(50, 2)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        spray(maps[0])
    bad = maps.copy()
    bad[7, 3, 3] = np.nan
    with pytest.raises(ValueError, match="heatmap 7 holds NaN"):
        spray(bad)
    with pytest.raises(ValueError, match="at least 4"):
        spray(maps[:3])
    with pytest.raises(ValueError, match="k must be"):
        spray(maps, k=50)
    with pytest.raises(ValueError, match="n_clusters must be"):
        spray(maps, n_clusters=0)
    with pytest.raises(ValueError, match="normalize must be"):
        spray(maps, normalize="unit")
    with pytest.raises(ValueError, match="clusterer must be"):
        spray(maps, clusterer="spectral")
    with pytest.raises(ValueError, match="knn must be"):
        spray(maps, knn="annoy")
    with pytest.raises(ValueError, match="numbers"):
        spray(np.array([["a"] * 4] * 4, dtype=object).reshape(1, 4, 4).repeat(5, 0))


def test_context_use_inside_and_outside_a_box_or_mask():
    maps = np.zeros((3, 10, 10), dtype=np.float32)
    maps[:, 2:5, 2:5] = 1.0  # 9 inside the box
    maps[1, 8, 8] = 9.0  # sample 1: as much outside
    maps[2, 0, 0] = -4.0  # negative relevance does not count by default
    boxes = np.array([[2, 2, 5, 5]] * 3)
    result = context_use(maps, boxes=boxes, labels=[0, 0, 1], classes=["a", "b"])
    np.testing.assert_allclose(result.inside, [9, 9, 9])
    np.testing.assert_allclose(result.outside, [0, 9, 0])
    np.testing.assert_allclose(result.context, [0, 1, 0])
    np.testing.assert_allclose(result.area, 0.09)
    assert result.per_class[0]["context"] == pytest.approx(0.5) and result.per_class[1]["name"] == "b"
    masks = np.zeros((3, 20, 20), bool)
    masks[:, 4:10, 4:10] = True  # the same region at twice the resolution
    np.testing.assert_allclose(context_use(maps, masks=masks).outside, result.outside)
    np.testing.assert_allclose(context_use(maps, boxes=boxes * 2, frame=(20, 20)).inside, result.inside)
    np.testing.assert_allclose(context_use(maps, boxes=boxes, sign="absolute").outside, [0, 9, 4])
    with pytest.raises(ValueError, match="boxes= .* or masks="):
        context_use(maps)
    with pytest.raises(ValueError, match="boxes must be shaped"):
        context_use(maps, boxes=boxes[:2])


def test_report_page_has_its_pictures(tmp_path):
    from unmask.analyze.spray_report import write_report

    maps, truth = planted(120, 2)
    result = spray(maps, embedding="spectral")
    page = write_report(tmp_path, result, heatmaps=maps, truth=truth, truth_name="group",
                        scores={"ari": result.adjusted_rand_index(truth)}, title="planted")
    text = page.read_text()
    assert "planted" in text and "eigenvalues.png" in text and "embedding.png" in text and "adjusted Rand index" in text
    for name in ("eigenvalues.png", "embedding.png", "cluster0_mean.png"):
        assert (tmp_path / "img" / name).stat().st_size > 1000


# ------------------------------------------------------------------------------------------ at scale


def test_approximate_knn_recalls_the_exact_neighbours():
    spray_module = importlib.import_module("unmask.analyze.spray")  # the package exports the function under that name

    maps, _ = planted(4000, 5)
    features = preprocess(maps)
    k = default_k(len(features))
    exact, used = spray_module.nearest_neighbors(features, k, "exact")
    approximate, backend = spray_module.nearest_neighbors(features, k, "faiss")
    assert (used, backend) == ("exact", "faiss") and approximate.shape == exact.shape == (4000, k)
    assert not (approximate == np.arange(4000)[:, None]).any(), "no sample is its own neighbour"
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approximate, exact)])
    assert recall >= 0.95, recall
    assert spray_module._knn_backend("auto", spray_module.EXACT_KNN_LIMIT + 1) == "faiss"  # the default install's path
    assert spray_module._knn_backend("auto", spray_module.EXACT_KNN_LIMIT) == "exact"


def test_the_default_backend_above_the_exact_limit_keeps_the_planted_labels(monkeypatch):
    spray_module = importlib.import_module("unmask.analyze.spray")  # the package exports the function under that name

    maps, truth = planted(3000, 4)
    exact = spray(maps, embedding=None, knn="exact")
    monkeypatch.setattr(spray_module, "EXACT_KNN_LIMIT", 1000)  # 3,000 samples take the path of 20,001+
    approximate = spray(maps, embedding=None)
    assert approximate.settings["knn"] == "faiss" and exact.settings["knn"] == "exact"
    assert approximate.n_clusters == exact.n_clusters == 4
    assert approximate.adjusted_rand_index(exact.labels) >= 0.99
    assert approximate.adjusted_rand_index(truth) >= 0.99


def test_memory_stays_below_one_copy_of_the_heatmaps():
    import tracemalloc

    maps, truth = planted(8000, 3)
    before = maps.copy()
    features = preprocess(maps)
    assert np.shares_memory(features, maps) and not features.flags.writeable  # float32 at 20 x 20: a view
    spray(maps[:300], embedding=None, knn="faiss")  # the imports (faiss, scipy, scikit-learn) are not the pipeline's memory
    tracemalloc.start()
    try:
        result = spray(maps, embedding=None, knn="faiss")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the largest piece is ARPACK's Lanczos basis (65 x N float64, 0.33 maps.nbytes); a float64 copy of the
    # heatmaps would be 2 maps.nbytes, a float32 copy alive beside the eigensolver about 1.7, N x N 40
    assert peak < 1.5 * maps.nbytes, (peak, maps.nbytes)
    np.testing.assert_array_equal(maps, before)
    assert result.adjusted_rand_index(truth) >= 0.99
    sizes = {c.label: c.size for c in result.clusters}
    for cluster in result.clusters:  # means summed slice by slice equal numpy's on the members
        np.testing.assert_allclose(cluster.mean_heatmap, maps[result.labels == cluster.label].mean(0), atol=1e-5)
    assert sum(sizes.values()) == 8000


@pytest.mark.filterwarnings("ignore:Exited:UserWarning")  # lobpcg stops near 1e-8; the tolerance below is its own
def test_spectrum_with_many_components_matches_the_dense_reference():
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    blocks = []
    for size in (40, 30, 25, 12, 8, 5, 3):
        a = (rng.random((size, size)) < 0.3).astype(float)
        a = np.triu(a, 1)
        a = a + a.T
        a[np.arange(size - 1), np.arange(1, size)] = a[np.arange(1, size), np.arange(size - 1)] = 1  # connected: a path
        blocks.append(a)
    w = sp.csr_matrix(sp.block_diag(blocks))
    m, _ = laplacian(w)
    reference = np.linalg.eigvalsh(np.eye(w.shape[0]) - m.toarray())[:12]
    assert np.sum(reference < 1e-9) == 7
    for solver in ("arpack", "shift-invert", "lobpcg"):
        values, vectors, _ = spectrum(w, 12, solver)
        np.testing.assert_allclose(values, reference, atol=1e-5 if solver != "lobpcg" else 1e-3)
        # eigenvectors: L v = lambda v
        lap = np.eye(w.shape[0]) - m.toarray()
        np.testing.assert_allclose(lap @ vectors, vectors * values, atol=1e-4 if solver != "lobpcg" else 1e-2)
    values, vectors, _ = spectrum(w, 5, "arpack")  # fewer asked than components: the largest ones' vectors
    assert np.allclose(values, 0) and vectors.shape == (w.shape[0], 5)
    assert [int((np.abs(v) > 0).sum()) for v in vectors.T] == [40, 30, 25, 12, 8]


def test_a_store_is_pooled_slice_by_slice_and_progress_is_shown(tmp_path, monkeypatch, capsys):
    spray_module = importlib.import_module("unmask.analyze.spray")  # the package exports the function under that name
    from unmask.store import attribute

    data = PlantedImages(90, 3, size=16)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 256, 3))
    store = attribute(model, data, tmp_path / "s", method="gradient_x_input", target=0, relevance="full", shard_size=32, progress=False)
    read = []
    original = type(store).iter_relevance

    def spy(self, positions=None, chunk=1024):
        read.append(chunk)
        return original(self, positions, chunk)

    monkeypatch.setattr(type(store), "iter_relevance", spy)
    monkeypatch.setattr(spray_module, "CHUNK", 20)
    streamed = spray(store, size=8, embedding=None, progress=True)
    assert read == [20]  # slices of at most CHUNK samples (and at most about 64 MB)
    whole = spray(store.relevance(), size=8, embedding=None)
    np.testing.assert_array_equal(streamed.labels, whole.labels)
    err = capsys.readouterr().err
    for step in ("spray pool (store)", "spray kNN graph", "spray 32 eigenvectors", "spray kmeans", "spray view"):
        assert step in err, err
