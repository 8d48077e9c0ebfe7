"""What the explorer's tests and scripts/screenshot_explore.py share: the Clever Hans run, a synthetic
100,000-point run written directly, and a headless Chromium (Debian's chromium + chromium-driver)."""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

#: a class name that would run a script if the page put it in as HTML
HOSTILE_NAME = '<img src=x onerror="window.__injected=1">'


def cleverhans_run(folder: Path, size: int = 400, method: str = "lrp.epsilon_plus_flat", embedding: str = "tsne") -> tuple[Path, Path]:
    """A store of the Clever Hans test split explained by the zoo model, and SpRAy of its circles."""
    from unmask.cli import spray
    from unmask.data.cleverhans import CleverHans
    from unmask.store import attribute
    from unmask.zoo import cleverhans_net as zoo_cleverhans

    name = method.replace(".", "_")
    store, result = folder / f"store-{name}", folder / f"spray-{name}"
    attribute(zoo_cleverhans.load(), CleverHans("test", size), store, method=method, batch_size=60, shard_size=120,
              model_name="cleverhans", progress=False)
    parser = argparse.ArgumentParser()
    spray.configure(parser)
    code = spray.run(parser.parse_args([str(store), "--class", "circle", "--out", str(result), "--embedding", embedding,
                                        "--no-verify", "--no-context"]))
    assert code == 0
    return store, result


def synthetic_run(folder: Path, n: int = 100_000, clusters: int = 5, seed: int = 0) -> tuple[Path, Path]:
    """A store of ``n`` samples (8 x 8 relevance, no images) and a SpRAy result with a 2-D embedding of
    ``clusters`` Gaussian blobs, written directly in the formats ``unmask attribute`` and ``unmask spray`` use."""
    import h5py

    from unmask.store._format import FORMAT, VERSION, shard_name

    rng = np.random.default_rng(seed)
    store = folder / "store-synthetic"
    (store / "shards").mkdir(parents=True)
    classes = ["cat", HOSTILE_NAME, "dog & fox"]
    labels = rng.integers(0, len(classes), n)
    manifest = {"format": FORMAT, "version": VERSION, "size": n, "shard_size": n,
                "settings": {"method": "synthetic", "model": "none", "relevance": "pooled", "classes": classes, "dataset": {"type": "synthetic"}},
                "fields": {"relevance": [8, 8], "input": [3, 8, 8], "extra": []}}
    (store / "store.json").write_text(json.dumps(manifest), encoding="utf-8")
    with h5py.File(store / "shards" / shard_name(0, n), "w") as handle:
        handle["index"] = np.arange(n, dtype=np.int64)
        handle["relevance"] = rng.standard_normal((n, 8, 8)).astype(np.float32)
        handle["prediction"] = labels
        handle["target"] = labels
        handle["target_logit"] = rng.standard_normal(n).astype(np.float32)
        handle["target_probability"] = rng.random(n).astype(np.float32)
        handle["label"] = labels
        handle.create_dataset("path", data=np.array([f"none/{i}" for i in range(n)], dtype=object), dtype=h5py.string_dtype())
    cluster = rng.integers(0, clusters, n)
    centres = rng.normal(0, 12, (clusters, 2))
    embedding = centres[cluster] + rng.standard_normal((n, 2))
    eigenvalues = np.concatenate([np.sort(rng.random(clusters)) * 0.01, 0.3 + np.sort(rng.random(10 - clusters)) * 0.5])
    result = folder / "spray-synthetic"
    result.mkdir()
    data = {
        "store": str(store), "store_path": str(store.resolve()), "method": "synthetic", "class": None, "selection": "all samples",
        "n_samples": n, "n_clusters": clusters, "suggested_n_clusters": clusters, "k": 12,
        "eigenvalues": eigenvalues.tolist(), "eigengaps": np.diff(eigenvalues).tolist(),
        "eigengap": float(eigenvalues[clusters] - eigenvalues[clusters - 1]),
        "clusters": [{"label": c, "size": int((cluster == c).sum())} for c in range(clusters)],
        "settings": {"embedding": "tsne"}, "indices": list(range(n)), "labels": cluster.tolist(),
        "embedding": np.round(embedding, 4).tolist(), "truth": None, "scores": None,
    }
    (result / "spray.json").write_text(json.dumps(data), encoding="utf-8")
    return store, result


def chromium_paths() -> tuple[str, str] | None:
    """The Chromium binary and its driver, or None when either is missing."""
    browser = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chrome(download_dir: Path | None = None, width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium driven by Selenium; downloads go to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                     "--force-device-scale-factor=1"):
        options.add_argument(argument)
    if download_dir is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False})
    session = webdriver.Chrome(options=options, service=Service(driver))
    if download_dir is not None:
        session.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return session


def wait_ready(driver: Any, timeout: float = 60.0) -> float:
    """Wait until the app has drawn its data; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        state = driver.execute_script("const e = window.unmaskExplore; return e ? [e.ready, e.error || null] : [false, null]")
        if state[1]:
            raise AssertionError(f"the explorer failed to load: {state[1]}")
        if state[0]:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise AssertionError(f"the explorer was not ready after {timeout} s")


def wait_for(condition: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")
