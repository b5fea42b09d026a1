"""`qa models` and `qa serve`: the models a server needs, and the server."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer

from qa.cli_common import USAGE, check_data_dir, fail, guard, read_settings, served_index_problem, setup_logging
from qa.settings import Settings


def models(
    prune: bool = typer.Option(False, "--prune", help="Then remove what QA_MODELS_DIR holds that the current settings do not use: model folders this project built (an older version's reader or embedder, or a built-in model QA_EMBEDDER / QA_READER no longer names) and leftovers of stopped builds; nothing else. A server of an older version, or one configured otherwise, may still use such a folder: run it after restarting servers on this version and these settings"),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --prune: list what it would remove, remove nothing"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build (once) and check the default models; print their paths and dimension. With --prune,
    reclaim the space of model folders the current settings do not use."""
    if dry_run and not prune:
        fail("--dry-run goes with --prune", USAGE)
    settings = read_settings()
    setup_logging(settings, verbose)
    from index.embeddings import BUILTIN_EMBEDDER, ensure_builtin_embedder

    in_use: set[str] = set()  # the model cache folders the current settings use
    if settings.embedder == BUILTIN_EMBEDDER:
        t0 = time.time()
        path, built = guard(ensure_builtin_embedder, settings.models_dir, settings.e5_source, verify=True)
        in_use.add(path.name)
        typer.echo(f"embedder {settings.embedder}: {path} ({'built in %.0fs' % (time.time() - t0) if built else 'reused'})")
    from index.embeddings import Embedder

    emb = guard(Embedder, settings.embedder, settings.models_dir, source=settings.e5_source)
    typer.echo(f"embedder dimension: {emb.dim}, max tokens: {emb.max_tokens}")
    from qa.reader import BUILTIN_READER, ensure_builtin_reader

    if settings.reader == BUILTIN_READER:
        t0 = time.time()
        path, built = guard(ensure_builtin_reader, settings.models_dir, Path(settings.reader_artifact), settings.e5_source, verify=True)
        in_use.add(path.name)
        typer.echo(f"reader {settings.reader}: {path} ({'built in %.0fs' % (time.time() - t0) if built else 'reused'})")
    else:
        from qa.pipeline import load_reader

        reader = guard(load_reader, settings)  # fetched into the Hugging Face cache now, not at the first question
        typer.echo(f"reader {settings.reader}: loaded ({reader.max_length} tokens a window)")
    if prune:  # only once the models in use are known to be built and sound
        _prune_models(settings.models_dir, (BUILTIN_EMBEDDER, BUILTIN_READER), in_use, dry_run)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _prune_models(models_dir: Path, kinds: tuple[str, ...], in_use: set[str], dry_run: bool) -> None:
    """Remove (or list) the model cache folders ``prunable_folders`` finds, with the space freed."""
    from index.e5_convert import folder_bytes, prunable_folders, set_aside

    found = prunable_folders(models_dir, kinds, in_use)
    if not found:
        typer.echo(f"nothing to remove in {models_dir}: it holds no model folder the current settings do not use")
        return
    freed, failed = 0, 0
    for item in found:
        why = "left by a model build that was stopped" if item.stopped_build else "not used by the current settings"
        if dry_run:
            typer.echo(f"would remove {item.path} ({_megabytes(item.size)}): {why}")
            freed += item.size
            continue
        gone = item.path
        try:
            gone = set_aside(item.path)
            shutil.rmtree(gone)
        except FileNotFoundError:  # removed meanwhile by another process: not freed by this one
            continue
        except OSError as exc:
            failed += 1
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(gone) else ""
            typer.echo(f"error: cannot remove {gone}: {exc.strerror or exc}{where}", err=True)
        left = folder_bytes(gone) if gone.exists() else 0
        freed += item.size - left
        if not gone.exists():
            typer.echo(f"removed {item.path} ({_megabytes(item.size)}): {why}")
    if dry_run:
        typer.echo(f"would free {_megabytes(freed)} in {models_dir} (--dry-run: nothing was removed)")
        return
    typer.echo(f"freed {_megabytes(freed)} in {models_dir}")
    if failed:
        raise typer.Exit(1)


def serve(
    host: Optional[str] = typer.Option(None, help="Default: QA_HOST (127.0.0.1)"),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="Default: QA_PORT (8000)"),
    workers: int = typer.Option(1, min=1, help="Each worker loads its own models (~1 GB)"),
) -> None:
    """Serve the HTTP API and the question page with uvicorn."""
    settings = read_settings()
    setup_logging(settings)
    host = host or settings.host
    port = port if port is not None else settings.port
    _serve_preflight(settings, host, port)
    from api.serving import run_server

    run = lambda: run_server(settings, host, port, workers)  # noqa: E731  the exit status: 0 after SIGTERM or Ctrl-C
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise typer.Exit(run())
    # several worker processes: metrics go through a shared folder so /metrics counts all of them
    # (api.metrics); a fresh one each time, since values left by an earlier server would add up
    with tempfile.TemporaryDirectory(prefix="qa-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            status = run()
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    raise typer.Exit(status)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _serve_preflight(settings: Settings, host: str, port: int) -> None:
    """What would otherwise fail inside uvicorn, after seconds of model loading, as a traceback:
    checked first, each as one line."""
    import socket

    from index.store import index_exists

    from qa.settings import configured_key

    problem = settings.keys_problem()
    if problem is not None:
        fail(problem)
    if configured_key(settings.api_key) is None and not _is_loopback(host):
        typer.echo(f"warning: listening on {host} with no QA_API_KEY: anyone who reaches port {port} can add and delete documents", err=True)
    check_data_dir(settings)
    if index_exists(settings.data_dir):
        # newer, damaged anywhere (not only where opening reads), unreadable: one line now, not after the models load
        problem = served_index_problem(settings)
        if problem is not None:
            fail(problem)
    else:
        typer.echo(f"note: no index at {settings.data_dir} yet: the service starts empty (add documents with `qa index`, POST /documents or POST /documents/files)", err=True)
    try:  # the port, before the models load
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc} (QA_PORT / --port)")
    from index.embeddings import BUILTIN_EMBEDDER, ensure_builtin_embedder
    from qa.reader import BUILTIN_READER, ensure_builtin_reader

    # the built-in models: a damaged artifact or cache, or a missing source, before uvicorn starts
    if settings.embedder == BUILTIN_EMBEDDER:
        guard(ensure_builtin_embedder, settings.models_dir, settings.e5_source)
    if settings.reader == BUILTIN_READER:
        guard(ensure_builtin_reader, settings.models_dir, Path(settings.reader_artifact), settings.e5_source)
    # other model names: one that cannot be loaded here (not a folder, not cached, hub unreachable;
    # a folder that holds no model, or no question-answering one for the reader)
    from index.hub import model_problem

    for kind, name, builtin in (("embedder", settings.embedder, BUILTIN_EMBEDDER), ("reader", settings.reader, BUILTIN_READER)):
        if name != builtin:
            problem = model_problem(name, kind)
            if problem is not None:
                fail(problem)
