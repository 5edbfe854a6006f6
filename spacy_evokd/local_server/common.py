"""What the local server's modules share: file locations, port, model alias, the error, `_pip`.
Its own module (the package re-exports it) so that ``server.py`` and ``weights.py`` import it
without importing the package that imports them."""

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ..ty import EvokdError

GGUF_PACKAGE = "gguf==0.19.0"  # reads GGUF metadata for `verify`
MODEL_PATH = Path("assets/teacher/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"

SERVER_WHEEL_DIR = Path("assets/teacher/server")
PARTS_WHEEL_DIR = Path("assets/teacher/wheels")
PID_FILE = Path("training/llm_server.pid")
LOG_FILE = Path("training/llm_server.log")
HOST = "127.0.0.1"
PORT = 8080


class LocalServerError(EvokdError, RuntimeError):
    """A step failed; the message is one line that names the file, port or command."""


def _pip(args: List[str], env: Optional[Dict[str, str]] = None) -> None:
    cmd = [sys.executable, "-m", "pip"] + args
    if subprocess.run(cmd, env=env).returncode != 0:
        raise LocalServerError(f"`{' '.join(cmd[1:])}` failed (its output is above)")
