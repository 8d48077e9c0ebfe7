"""``unmask explore``: browse a store's heatmaps and its SpRAy results in a local web page.

    unmask attribute cleverhans:test --out runs/ch
    unmask spray runs/ch --class circle --out runs/ch-spray
    unmask explore runs/ch runs/ch-spray --open                 # http://127.0.0.1:8000/
    unmask explore runs/ch runs/ch-spray --static site/         # the same app as files, for any web server

Give a store (of 'unmask attribute') and the folders 'unmask spray --out' wrote for it; further stores
(the same samples explained with another method) and their SpRAy results can follow, for comparison.
"""
from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from ._args import EXIT_OK, UsageError, non_negative_int, output_folder

HELP = "browse a store's heatmaps and SpRAy results in the browser"


EPILOG = """\
the page: the embedding of each SpRAy result (colour by cluster, label or prediction; drag to pan,
wheel to zoom, lasso or rectangle to select), its eigenvalues with the eigengap, cluster and class
buttons, every selected sample in a paged grid (input, heatmap, overlay), a second analysis side by
side, the state in the URL, and the selection exported as CSV or JSON of data set indices.

exit codes: 0 done (server stopped with Ctrl-C); 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask explore`` to ``parser``."""
    parser.add_argument("store", metavar="STORE", help="a store written by 'unmask attribute' (folder or merged .h5)")
    parser.add_argument("results", nargs="*", metavar="SPRAY_RESULT",
                        help="folders written by 'unmask spray --out' (or their spray.json), or further stores to compare")
    parser.add_argument("--port", type=_port, default=8000, metavar="N", help="port to listen on (default: 8000; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")
    parser.add_argument("--static", metavar="DIR", help="write the app and its data as files to DIR instead of serving (three PNGs per analysed sample)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (with --static)")


def _port(text: str) -> int:
    port = non_negative_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _is_store(path: Path) -> bool:
    return (path / "store.json").is_file() or (path.is_file() and path.suffix in (".h5", ".hdf5"))


def run(args: argparse.Namespace) -> int:
    """Run ``unmask explore`` for parsed ``args``; returns the exit code."""
    from ..explore import ExploreError, Explorer, make_server

    if args.static:
        output_folder(args.static, "--static")  # before the app is built
    stores, analyses = [args.store], []
    for name in args.results:
        path = Path(name)
        if not path.exists():
            raise UsageError(f"{name}: no such file or folder")
        (stores if _is_store(path) else analyses).append(name)
    try:
        explorer = Explorer(stores, analyses)
    except (ExploreError, ImportError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    if args.static:
        try:
            index = explorer.write_static(args.static, progress=not args.no_progress)
        except ExploreError as error:
            raise UsageError(str(error)) from None
        print(f"unmask: wrote the explorer to {args.static}; serve that folder (e.g. python -m http.server -d {args.static}) "
              f"and open index.html ({index})", flush=True)
        return EXIT_OK
    try:
        server = make_server(explorer, args.host, args.port, quiet=True)
    except OSError as error:
        hint = "; choose another --port" if error.errno == errno.EADDRINUSE else ""
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}{hint}") from None
    host, port = server.server_address[:2]
    url = f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}/"
    print(f"unmask: exploring {len(explorer.stores)} store(s), {len(explorer.analyses)} SpRAy result(s) at {url} (Ctrl-C stops)", flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"unmask: warning: {host} is reachable from other machines; anyone who can reach it sees these heatmaps and file paths",
              file=sys.stderr, flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("unmask: stopped", file=sys.stderr, flush=True)
    finally:
        server.server_close()
    return EXIT_OK
