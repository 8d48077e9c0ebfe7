"""Results for whole data sets on disk: chunked, resumable, mergeable (HDF5 via h5py).

>>> store = unmask.store.attribute(net, dataset, "runs/cleverhans", method="lrp.epsilon_plus", batch_size=64)
>>> store = unmask.store.open_store("runs/cleverhans")      # later, or while a run is still going
>>> store.labels, store.predictions, store.heatmaps(size=20).shape
>>> unmask.store.merge(["runs/part0", "runs/part1"], "runs/all.h5")

Command line: ``unmask attribute DATA --out STORE``. Why HDF5 and the layout on disk: see
:mod:`unmask.store._format`.
"""
from ._format import Store, StoreError
from ._write import RELEVANCE_MODES, attribute, merge, model_hash, normalize_item, open_store

__all__ = ["RELEVANCE_MODES", "Store", "StoreError", "attribute", "merge", "model_hash", "normalize_item", "open_store"]
