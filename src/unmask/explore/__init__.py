"""An interactive explorer of a data set's explanations in the browser: ``unmask explore STORE [SPRAY ...]``.

The 2-D embedding of each SpRAy result as a scatter (coloured by cluster, label or prediction; pan, zoom,
hover preview, lasso and rectangle selection), its eigenvalues with the eigengap, cluster and class
buttons, a paged grid of every selected sample (input, heatmap, overlay, prediction, label, relevance
share) with a detail view, two analyses side by side, the state in the URL and the selection exported
as CSV or JSON of data set indices. The page is plain files in ``unmask/explore/static``; the data
comes from :class:`Explorer`, served by :func:`make_server` or written out by ``Explorer.write_static``.

>>> explorer = unmask.explore.Explorer(["runs/ch"], ["runs/ch-spray"])
>>> server, url = unmask.explore.serve_in_thread(explorer)        # open url in a browser
"""
from .data import Analysis, ExploreError, Explorer
from .server import make_server, serve_in_thread

__all__ = ["Analysis", "ExploreError", "Explorer", "make_server", "serve_in_thread"]
