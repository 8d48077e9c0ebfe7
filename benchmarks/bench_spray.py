"""SpRAy at scale: unmask.analyze.spray on 100,000 to 1,000,000 heatmaps of 20 x 20, and CoRelAy side by side.

    python benchmarks/bench_spray.py                       # 100k with unmask, CoRelAy up to what fits
    python benchmarks/bench_spray.py --n 100000 300000 1000000 --corelay   # the scale rows, no CoRelAy
    python benchmarks/bench_spray.py --n 20000 --corelay 2000 5000
    python benchmarks/bench_spray.py --json out.json

The heatmaps are synthetic but shaped like real ones: a blob of relevance at one of four object places
(jittered) plus noise, and 10 % "Clever Hans" samples with relevance in a corner. Both tools get the
same data, the same k = ceil(ln n) nearest neighbours, 32 eigenvalues and k-means with the same number
of clusters. unmask runs its whole pipeline (kNN graph, Laplacian, eigsh, k-means, t-SNE view);
CoRelAy runs its SpectralClustering pipeline (SciPyPDist -> SparseKNN -> SymmetricNormalLaplacian ->
EigenDecomposition -> KMeans), which forms the dense N x N distance matrix and sorts it, so its
memory grows as N^2: it is run for increasing N while its estimated peak fits in 80 % of the free
memory (17 N^2 bytes: measured 16.2 N^2 at N = 20,000, the float64 distance matrix, its argsort and
pdist's condensed copy). One process; for each run the wall time, the peak traced allocation
(tracemalloc: numpy and Python; the per-step number to compare) and the peak resident memory above the
level at the step's start (sampled every 20 ms; includes faiss / BLAS buffers, but memory freed by an
earlier step and kept by the allocator hides later growth) are reported, and the time ratio where both
ran the same N. CPU seconds (all threads of this process) are given beside the wall time: on a shared
machine the wall time depends on the other load, the CPU time much less. Each scale row runs with
``progress=True`` (a line per step on stderr) and gives the seconds per step.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def heatmaps(n: int, seed: int = 0, size: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    centres = np.array([[6, 6], [13, 6], [6, 13], [13, 13], [1.5, 18.5]], dtype=np.float32)
    truth = rng.choice(5, size=n, p=[0.225, 0.225, 0.225, 0.225, 0.1])
    out = np.empty((n, size, size), dtype=np.float32)
    for start in range(0, n, 10000):
        t = truth[start : start + 10000]
        where = centres[t] + rng.normal(scale=1.2, size=(len(t), 2)).astype(np.float32) * (t[:, None] < 4)
        width = np.where(t < 4, 2.5, 1.0).astype(np.float32)[:, None, None]
        blob = np.exp(-((xx - where[:, 0, None, None]) ** 2 + (yy - where[:, 1, None, None]) ** 2) / (2 * width**2))
        out[start : start + len(t)] = blob + rng.normal(scale=0.15, size=blob.shape).astype(np.float32)
    return out, truth


class PeakRSS:
    """Peak resident memory of this process above its level at start, sampled in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> "PeakRSS":
        self.base = self.peak = self.rss()
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def above_start(self) -> int:
        return self.peak - self.base


def measure(function, *args, **kwargs) -> tuple[object, dict[str, float]]:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    with PeakRSS() as rss:
        started, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, {"seconds": seconds, "cpu_seconds": cpu, "traced_peak_mb": traced / 2**20,
                    "rss_peak_above_start_mb": rss.above_start / 2**20, "rss_peak_mb": rss.peak / 2**20}


def run_unmask(maps: np.ndarray, n_clusters: int | None, embedding: str | None, progress: bool = False) -> object:
    from unmask.analyze.spray import spray

    return spray(maps, n_clusters=n_clusters, embedding=embedding, progress=progress)


def run_corelay(maps: np.ndarray, n_clusters: int) -> object:
    from corelay.pipeline.spectral import SpectralClustering
    from corelay.processor.affinity import SparseKNN
    from corelay.processor.clustering import KMeans
    from corelay.processor.embedding import EigenDecomposition

    n = len(maps)
    k = max(1, math.ceil(math.log(n)))
    pipeline = SpectralClustering(
        affinity=SparseKNN(n_neighbors=k, symmetric=True),
        embedding=EigenDecomposition(n_eigval=32),
        clustering=KMeans(n_clusters=n_clusters),
    )
    return pipeline(maps.reshape(n, -1).astype(np.float64))


def free_bytes() -> int:
    with open("/proc/meminfo") as handle:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle}
    return info.get("MemAvailable", info["MemFree"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[100_000], help="heatmaps for unmask's scale runs (default: 100000)")
    parser.add_argument("--corelay", type=int, nargs="*", default=[2000, 5000, 10000, 20000, 25000, 30000], help="N for the CoRelAy runs")
    parser.add_argument("--embedding", default="tsne", help="unmask's 2-D view in the scale run (default: tsne)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    from sklearn.metrics import adjusted_rand_score

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f}, {free_bytes() / 2**30:.1f} GiB available", flush=True)
    report: dict[str, object] = {"cores": os.cpu_count(), "load_average": load, "unmask": [], "corelay": [], "ratio": []}

    for n in args.n:
        maps, truth = heatmaps(n)
        start_rss = PeakRSS.rss()
        result, numbers = measure(run_unmask, maps, None, None if args.embedding == "none" else args.embedding, True)
        numbers.update(n=n, clusters=result.n_clusters, ari=adjusted_rand_score(truth, result.labels),
                       steps={k: round(v, 2) for k, v in result.timings.items()}, knn=result.settings["knn"],
                       eigensolver=result.settings["eigensolver"], embedding=args.embedding, load_average=os.getloadavg(),
                       heatmaps_mb=maps.nbytes / 2**20, rss_before_mb=start_rss / 2**20)
        report["unmask"].append(numbers)
        print(
            f"unmask  N={n:>7}: {numbers['seconds']:6.1f} s ({numbers['cpu_seconds']:6.1f} CPU s, load {numbers['load_average'][0]:.1f})  "
            f"traced peak {numbers['traced_peak_mb']:7.0f} MiB  RSS peak {numbers['rss_peak_mb']:6.0f} MiB (heatmaps "
            f"{numbers['heatmaps_mb']:.0f} MiB of it)  clusters {result.n_clusters}  ARI {numbers['ari']:.3f}  "
            f"steps {numbers['steps']} ({numbers['knn']}, {numbers['eigensolver']})",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=float))
        del maps, result
        gc.collect()

    clusters = 5
    for n in args.corelay:
        need = 17 * n * n
        if need > 0.8 * free_bytes():
            print(f"corelay N={n:>7}: skipped, needs about {need / 2**30:.1f} GiB (dense N x N), {free_bytes() / 2**30:.1f} GiB available", flush=True)
            report["corelay"].append({"n": n, "skipped": f"needs about {need / 2**30:.1f} GiB"})
            break
        maps, truth = heatmaps(n, seed=1)
        try:
            labels, corelay_numbers = measure(run_corelay, maps, clusters)
        except MemoryError:
            print(f"corelay N={n:>7}: MemoryError", flush=True)
            report["corelay"].append({"n": n, "error": "MemoryError"})
            break
        labels = labels[-1] if isinstance(labels, tuple) else labels
        corelay_numbers.update(n=n, ari=adjusted_rand_score(truth, np.asarray(labels).reshape(-1)))
        report["corelay"].append(corelay_numbers)
        result, same = measure(run_unmask, maps, clusters, None)
        same.update(n=n, ari=adjusted_rand_score(truth, result.labels))
        ratio = corelay_numbers["seconds"] / same["seconds"]
        report["ratio"].append({"n": n, "corelay_s": corelay_numbers["seconds"], "unmask_s": same["seconds"], "corelay_over_unmask": ratio,
                                "corelay_traced_mb": corelay_numbers["traced_peak_mb"], "unmask_traced_mb": same["traced_peak_mb"]})
        print(
            f"corelay N={n:>7}: {corelay_numbers['seconds']:6.1f} s  traced peak {corelay_numbers['traced_peak_mb']:7.0f} MiB  "
            f"RSS peak +{corelay_numbers['rss_peak_above_start_mb']:6.0f} MiB  ARI {corelay_numbers['ari']:.3f}   |   unmask (same N, "
            f"5 clusters, no view) {same['seconds']:5.1f} s, traced peak {same['traced_peak_mb']:4.0f} MiB, ARI {same['ari']:.3f}   "
            f"ratio {ratio:.1f}x",
            flush=True,
        )
        del maps
        gc.collect()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
