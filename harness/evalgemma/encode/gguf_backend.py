"""The llama.cpp backend: convert a sentence-transformers model to GGUF, quantize it, encode with it.

What is converted is the pipeline a user deploys with llama.cpp, made by llama.cpp's **own** tools:

* conversion: ``convert_hf_to_gguf.py`` of the llama.cpp sources vendored in the llama-cpp-python
  sdist of the pinned version (with ``--sentence-transformers-dense-modules``, so the Dense heads
  travel; pooling comes from ``1_Pooling/config.json``), run as a subprocess with its own ``gguf-py``;
  nothing of it is copied into this repository. The sdist is taken from ``$EVALGEMMA_LLAMA_CPP_SDIST``,
  ``<user cache>/evalgemma/sdist/`` (where ``scripts/bootstrap.sh`` leaves it), or fetched there with
  ``pip download``; the converter files are extracted once into ``<user cache>/evalgemma/llama.cpp/<version>/``.
* quantization (``--quant``): ``none`` = the float32 GGUF; ``bf16`` / ``q8_0`` / ``q4_0`` = llama.cpp's
  ``llama_model_quantize`` of it (its defaults: 1-d tensors — norms — stay float32; Q4_0 files keep
  the token embeddings at Q4_0 too unless llama.cpp's own rules say otherwise).

Artifacts are cached by content, one folder per key under ``cache_dir``::

    cache_dir/<key>/model.gguf            # written to a temp file in the folder, fsynced, os.replace'd
    cache_dir/<key>/evalgemma_gguf.json   # the manifest, written last: an entry without it is incomplete

The key hashes the source directory's files (sha256), the recipe (dense heads, quantization) and the
converter's identity (llama-cpp-python version + sdist sha256 + packages that change the file).

Encoding: llama.cpp runs in a worker process (``gguf_worker``), so a native abort (``GGML_ASSERT``)
is a ``DataError`` with llama.cpp's own message, never a dead run. ``GgufSentenceModel`` answers
sentence-transformers' ``encode``: evalgemma renders ``prompt + text`` (the same strings every backend
gets), llama.cpp's tokenizer (the GGUF's vocabulary) tokenizes it, sequences are truncated to
``max_seq_length`` as sentence-transformers does (content cut, special tokens kept), llama.cpp pools
and applies the Dense heads, and the vectors are L2-normalised when the pipeline ends with Normalize
(llama.cpp itself returns them unnormalised). llama-cpp-python is optional
(``pip install -e '.[gguf]'``) and imported only in the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalgemma.errors import ConfigError, DataError, unknown_name
from evalgemma.io import atomic_write, atomic_write_by, file_sha256

log = logging.getLogger(__name__)

GgufQuant = Literal["none", "bf16", "q8_0", "q4_0"]
GGUF_QUANTS: tuple[GgufQuant, ...] = ("none", "bf16", "q8_0", "q4_0")
#: llama.cpp's ``llama_ftype`` of each quantization (``LLAMA_FTYPE_*``).
FTYPES: dict[str, int] = {"none": 0, "bf16": 32, "q8_0": 7, "q4_0": 2}
#: ``general.file_type`` → name, for files given as they are.
FILE_TYPES: dict[int, str] = {0: "f32", 1: "f16", 32: "bf16", 7: "q8_0", 2: "q4_0", 3: "q4_1", 8: "q5_0", 9: "q5_1",
                              15: "q4_k_m", 17: "q5_k_m", 18: "q6_k", 14: "q4_k_s", 16: "q5_k_s"}
_FLOAT_TYPES = ("f32", "f16", "bf16")
LLAMA_CPP_VERSION = "0.3.36"
ARTIFACT_SCHEMA = "evalgemma-gguf-artifact/1"
#: Bump when the conversion recipe changes in a way the recipe fields do not show.
CONVERT_FORMAT = 1
MODEL_FILE = "model.gguf"
MANIFEST = "evalgemma_gguf.json"
INSTALL_HINT = (f"pip install -c constraints.txt -e '.[gguf]' (llama-cpp-python=={LLAMA_CPP_VERSION} builds from source, "
                "about 12 min on 2 cores; scripts/bootstrap.sh --test reuses a cached wheel)")
#: Packages whose version changes the converted file (the converter imports torch/transformers/sentencepiece).
_VERSIONED = ("torch", "transformers", "sentencepiece", "safetensors", "numpy")
#: Tokens per llama.cpp decode call (the batch every sequence of a call is packed into).
DEFAULT_N_BATCH = 512
_GGUF_MAGIC = b"GGUF"
_CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/", "gguf-py/pyproject.toml", "LICENSE")


@dataclass(frozen=True)
class GgufArtifact:
    """One GGUF file evalgemma can encode with, and where it came from."""

    path: Path
    sha256: str
    quant: str  # the --quant it stands for (a given file: "none" = as given)
    origin: Literal["converted", "given"]
    source: str  # the model directory converted, or the file given
    output_dim: int | None
    normalize: bool  # L2-normalise llama.cpp's vectors (the pipeline ends with Normalize)
    file_bytes: int
    file_type: str = ""  # GGUF general.file_type, by name
    manifest: Mapping[str, Any] = field(default_factory=dict)
    built_seconds: float | None = None


# ---------------------------------------------------------------- dependencies


def require_runtime() -> None:
    """ConfigError naming the extra when llama-cpp-python is not installed (checked without importing it)."""
    if util.find_spec("llama_cpp") is None:
        raise ConfigError(f"--backend gguf needs the Python package 'llama-cpp-python', which is not installed: {INSTALL_HINT}")


def parse_gguf_quant(value: str) -> GgufQuant:
    if value not in GGUF_QUANTS:
        raise unknown_name("GGUF quantization", value, GGUF_QUANTS, where="--quant")
    return value


def _versions() -> dict[str, str]:
    out = {}
    for name in (*_VERSIONED, "llama_cpp_python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _key(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def _user_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalgemma"))


def default_gguf_cache_dir() -> Path:
    """``<user cache dir>/evalgemma/gguf``."""
    return _user_cache() / "gguf"


# ---------------------------------------------------------------- llama.cpp's converter, from the sdist


def _sdist() -> Path:
    """The llama-cpp-python sdist of the pinned version (fetched into the user cache with pip when absent)."""
    name = f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
    given = os.environ.get("EVALGEMMA_LLAMA_CPP_SDIST")
    if given:
        if not Path(given).is_file():
            raise ConfigError(f"EVALGEMMA_LLAMA_CPP_SDIST={given}: no such file (the llama-cpp-python {LLAMA_CPP_VERSION} sdist)")
        return Path(given)
    folder = _user_cache() / "sdist"
    if (folder / name).is_file():
        return folder / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(folder), f"llama-cpp-python=={LLAMA_CPP_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (folder / name).is_file():
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise ConfigError(f"--backend gguf converts with llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python {LLAMA_CPP_VERSION} sdist, "
                          f"which is not in {folder} and could not be fetched ({tail[:300]}); put it there or set EVALGEMMA_LLAMA_CPP_SDIST")
    return folder / name


def converter_dir() -> tuple[Path, dict[str, str]]:
    """The folder holding llama.cpp's ``convert_hf_to_gguf.py`` (+ ``conversion/``, ``gguf-py/``) and its identity.

    Extracted once from the sdist (only those members; into a temp folder, then renamed).
    """
    target = _user_cache() / "llama.cpp" / LLAMA_CPP_VERSION
    marker = target / "evalgemma_source.json"
    if marker.is_file():
        with suppress(OSError, ValueError):
            return target, dict(json.loads(marker.read_text(encoding="utf-8")))
    sdist = _sdist()
    digest = file_sha256(sdist)
    prefix = f"llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp/"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for member in tar.getmembers():
                rel = member.name[len(prefix):] if member.name.startswith(prefix) else None
                if rel and any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in _CONVERTER_FILES) and (member.isfile() or member.isdir()):
                    member.name = rel
                    members.append(member)
            if not any(m.name == "convert_hf_to_gguf.py" for m in members):
                raise DataError(f"{sdist}: no vendor/llama.cpp/convert_hf_to_gguf.py in it (not the llama-cpp-python sdist?)")
            tar.extractall(tmp, members=members, filter="data")
        gguf_py = "unknown"
        pyproject = tmp / "gguf-py" / "pyproject.toml"
        if pyproject.is_file():
            import tomllib

            gguf_py = str(tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("version", "unknown"))
        identity = {"llama_cpp_python": LLAMA_CPP_VERSION, "sdist_sha256": digest, "gguf_py": gguf_py}
        atomic_write(tmp / "evalgemma_source.json", json.dumps(identity, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, identity


# ---------------------------------------------------------------- the worker


def _signal_name(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit status {code}"


class GgufWorker:
    """llama.cpp in a child process. Every call returns the worker's answer, or raises DataError when
    the runtime failed or the process died (with the last lines llama.cpp wrote to stderr)."""

    def __init__(self, what: str) -> None:
        require_runtime()
        self.what = what
        self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (open for the worker's life; closed in close())
        worker = Path(__file__).with_name("gguf_worker.py")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GGML_NO_BACKTRACE": "1"}  # no gdb attach on an abort
        self.proc = subprocess.Popen([sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self._lock = threading.Lock()
        hello = self._exchange(None, "starting llama.cpp")
        self.version = str(hello.get("version", "?"))

    def log_tail(self, lines: int = 6) -> str:
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        noise = ("llama_model_loader: - kv", "llama_model_loader: - type", "Model metadata:", "Using fallback chat format", "Using gguf chat")
        rows = [r.strip()[:300] for r in text.splitlines() if r.strip() and not r.startswith(noise)]
        important = [r for r in rows if "GGML_ASSERT" in r or "error" in r.lower() or "failed" in r.lower() or "invalid" in r.lower()]
        picked = important[-lines:] if important else rows[-lines:]
        return " | ".join(picked)[-900:]

    def _exchange(self, request: dict[str, Any] | None, doing: str) -> dict[str, Any]:
        from evalgemma.encode import gguf_worker as protocol

        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            try:
                if request is not None:
                    protocol.send(self.proc.stdin, request)  # type: ignore[arg-type]
                answer = protocol.receive(self.proc.stdout)  # type: ignore[arg-type]
            except (BrokenPipeError, OSError):
                answer = None
        if answer is None:
            code = self.proc.wait(timeout=30)
            raise DataError(f"{self.what}: llama.cpp crashed while {doing} ({_signal_name(code)}): {self.log_tail() or 'no message'}")
        if "error" in answer:
            if answer.get("kind") == "import":
                raise ConfigError(f"--backend gguf: {answer['error']}: {INSTALL_HINT}")
            tail = self.log_tail()
            raise DataError(f"{self.what}: llama.cpp failed while {doing}: {answer['error']}" + (f" ({tail})" if tail else ""))
        return dict(answer)

    def call(self, op: str, doing: str, **kwargs: Any) -> Any:
        return self._exchange({"op": op, **kwargs}, doing).get("result")

    def close(self) -> None:
        if self.proc.poll() is None:
            with suppress(Exception):
                assert self.proc.stdin is not None
                from evalgemma.encode import gguf_worker as protocol

                protocol.send(self.proc.stdin, {"op": "exit"})  # type: ignore[arg-type]
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with suppress(OSError):
            self._log.close()

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()


# ---------------------------------------------------------------- inspecting a file


def _check_magic(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if head != _GGUF_MAGIC:
        raise DataError(f"{path}: not a GGUF file (it starts with {head!r}, a GGUF file with b'GGUF')")


def inspect_gguf(path: Path, *, threads: int | None = 1) -> dict[str, Any]:
    """Load ``path`` in a llama.cpp worker and check it is a sentence-embedding model; its description.

    Raises:
        DataError: not GGUF, corrupt or truncated (llama.cpp's message), a crash of llama.cpp, or a
            model without pooling (a decoder or token-embedding model: no sentence vector).
    """
    _check_magic(path)
    worker = GgufWorker(str(path))
    try:
        info = dict(worker.call("load", "loading it", path=str(path), n_ctx=512, n_batch=512, n_threads=threads))
        _check_embedding_model(path, info)
        vector = worker.call("embed", "encoding a probe", sequences=[_frame([0], info, 8)])
        if not np.all(np.isfinite(vector)):
            raise DataError(f"{path}: llama.cpp returns non-finite vectors for it")
        return info
    finally:
        worker.close()


def _check_embedding_model(path: Path, info: Mapping[str, Any]) -> None:
    if int(info["pooling"]) <= 0:  # LLAMA_POOLING_TYPE_NONE (0) / UNSPECIFIED (-1)
        arch = info["metadata"].get("general.architecture", "?")
        raise DataError(f"{path}: not a sentence-embedding model ({arch}, no pooling: llama.cpp gives token vectors only); "
                        "convert a sentence-transformers model with its pooling (evalgemma does: --model DIR --backend gguf)")


def _file_type(info: Mapping[str, Any]) -> str:
    raw = info["metadata"].get("general.file_type")
    try:
        return FILE_TYPES.get(int(raw), f"ftype {raw}") if raw is not None else "unknown"
    except ValueError:
        return "unknown"


def _frame(content: list[int], info: Mapping[str, Any], max_len: int) -> list[int]:
    """``[bos] content [eos/sep]`` as the GGUF's vocabulary adds them, content cut so the whole fits ``max_len``
    (sentence-transformers' truncation: the special tokens stay)."""
    specials = list(info["specials_empty"])
    n_pre = 1 if info["add_bos"] and specials else 0
    pre, post = specials[:n_pre], specials[n_pre:]
    keep = max(0, max_len - len(pre) - len(post))
    return pre + content[:keep] + post


# ---------------------------------------------------------------- the content cache


def _read_entry(folder: Path) -> dict[str, Any] | None:
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    problem = ""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("schema") != ARTIFACT_SCHEMA:
            problem = "unknown manifest schema"
        elif not (folder / MODEL_FILE).is_file():
            problem = f"{MODEL_FILE} is missing"
        elif file_sha256(folder / MODEL_FILE) != manifest.get("gguf_sha256"):
            problem = f"{MODEL_FILE} does not match the sha256 its manifest records"
    except (OSError, ValueError) as exc:
        problem = f"unreadable manifest ({exc})"
    if problem:
        warnings.warn(f"{folder}: damaged GGUF cache entry ({problem}); rebuilding it", RuntimeWarning, stacklevel=3)
        with suppress(OSError):
            manifest_path.unlink()
        return None
    return dict(manifest)


def _artifact(folder: Path, manifest: Mapping[str, Any], built: float | None) -> GgufArtifact:
    path = folder / MODEL_FILE
    return GgufArtifact(path, str(manifest["gguf_sha256"]), str(manifest["quant"]), manifest["origin"], str(manifest["source"]),
                        manifest.get("output_dim"), bool(manifest.get("normalize", True)), path.stat().st_size,
                        str(manifest.get("file_type", "")), dict(manifest), built)


def _finish_entry(folder: Path, manifest: dict[str, Any], info: Mapping[str, Any], started: float) -> GgufArtifact:
    path = folder / MODEL_FILE
    manifest = {**manifest, "schema": ARTIFACT_SCHEMA, "gguf_sha256": file_sha256(path), "file_bytes": path.stat().st_size,
                "file_type": _file_type(info), "n_embd": int(info["n_embd"]), "pooling": int(info["pooling"]),
                "architecture": info["metadata"].get("general.architecture", ""), "built_seconds": round(time.perf_counter() - started, 3)}
    manifest.setdefault("output_dim", int(info["n_embd"]))
    atomic_write(folder / MANIFEST, json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    return _artifact(folder, manifest, manifest["built_seconds"])


# ---------------------------------------------------------------- conversion and quantization


def _pipeline_facts(source: Path) -> dict[str, Any]:
    """What the sentence-transformers config says the GGUF must reproduce: Normalize, Dense heads, output dim."""
    modules_path = source / "modules.json"
    modules = json.loads(modules_path.read_text(encoding="utf-8")) if modules_path.is_file() else []
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    dense = [m for m in modules if str(m.get("type", "")).endswith("Dense")]
    dim = None
    if dense:
        with suppress(OSError, ValueError, KeyError):
            dim = int(json.loads((source / dense[-1]["path"] / "config.json").read_text(encoding="utf-8"))["out_features"])
    for m in modules:
        if str(m.get("type", "")).endswith("Pooling"):
            with suppress(OSError, ValueError):
                pooling = json.loads((source / m["path"] / "config.json").read_text(encoding="utf-8"))
                if pooling.get("include_prompt") is False:
                    raise ConfigError(f"--model {source}: its Pooling excludes prompt tokens (include_prompt=false); llama.cpp pools every token")
    return {"normalize": "Normalize" in types, "dense_heads": len(dense), "modules": types, "dense_dim": dim}


def convert_gguf(model_dir: str | Path, cache_dir: str | Path, quant: str = "none", *, dense_modules: bool = True, build: bool = True) -> GgufArtifact | None:
    """The GGUF artifact of a local sentence-transformers directory, converted (and quantized) once.

    ``dense_modules=False`` leaves out ``--sentence-transformers-dense-modules`` (a file without the
    Dense heads: what an unwary conversion deploys; the tests use it as a broken artifact).
    ``build=False``: only look the artifact up (None when it would have to be made).

    Raises:
        ConfigError: not a directory, an unknown quantization, llama-cpp-python missing.
        DataError: the converter or quantizer failed (their message), or llama.cpp cannot run the result.
    """
    from evalgemma.encode.models import directory_digest

    quant = parse_gguf_quant(quant)
    source = Path(model_dir).expanduser().resolve()
    if not source.is_dir():
        raise ConfigError(f"--model {model_dir}: the GGUF conversion needs a local sentence-transformers directory")
    require_runtime()
    facts = _pipeline_facts(source)
    cache = Path(cache_dir)
    material = {"format": CONVERT_FORMAT, "source_sha256": directory_digest(source), "outtype": "f32", "dense_modules": dense_modules,
                "llama_cpp_python": LLAMA_CPP_VERSION, "versions": _versions()}
    folder = cache / _key(material)
    manifest = _read_entry(folder)
    if manifest:
        base = _artifact(folder, manifest, None)
    elif build:
        base = _convert_entry(source, folder, material, facts, dense_modules)
    else:
        return None
    if quant == "none":
        return base
    return _quantized(base, cache, quant, build=build)


def _convert_entry(source: Path, folder: Path, material: Mapping[str, Any], facts: Mapping[str, Any], dense_modules: bool) -> GgufArtifact:
    started = time.perf_counter()
    tools, identity = converter_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_tail: list[str] = []

    def convert(tmp: Path) -> None:
        cmd = [sys.executable, str(tools / "convert_hf_to_gguf.py"), str(source), "--outfile", str(tmp), "--outtype", "f32"]
        if dense_modules:
            cmd.append("--sentence-transformers-dense-modules")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("NO_LOCAL_GGUF", None)  # the converter's own gguf-py, not whatever gguf is installed
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(folder), env=env)
        log_tail.extend((done.stderr or "").strip().splitlines()[-4:])
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            lines = [r for r in (done.stderr or done.stdout).strip().splitlines() if r.strip()]
            hint = ""
            config = (source / "config.json").read_text(errors="replace").lower() if (source / "config.json").is_file() else ""
            if not (source / "tokenizer.model").is_file() and "gemma" in config:
                hint = " (a Gemma model needs its sentencepiece tokenizer.model beside config.json)"
            raise DataError(f"--model {source}: llama.cpp's convert_hf_to_gguf.py failed ({_signal_name(done.returncode)}): "
                            f"{' | '.join(lines[-3:])[-700:]}{hint}")

    atomic_write_by(folder / MODEL_FILE, convert)
    info = _inspect_new(folder / MODEL_FILE)
    manifest = {"origin": "converted", "source": str(source), "key_material": dict(material), "quant": "none", "converter": identity,
                "dense_modules": dense_modules, "normalize": facts["normalize"], "st_modules": facts["modules"],
                "output_dim": facts["dense_dim"] if dense_modules and facts["dense_dim"] else int(info["n_embd"]), "converter_log": log_tail}
    log.info("converted %s to GGUF in %.1f s", source, time.perf_counter() - started)
    return _finish_entry(folder, manifest, info, started)


def _inspect_new(path: Path) -> dict[str, Any]:
    """``inspect_gguf`` of a file just made; one llama.cpp cannot run is removed (no manifest is written for it)."""
    try:
        return inspect_gguf(path)
    except BaseException:
        with suppress(OSError):
            path.unlink()
        raise


def _quantized(base: GgufArtifact, cache: Path, quant: str, *, build: bool = True, threads: int | None = None) -> GgufArtifact | None:
    material = {"format": CONVERT_FORMAT, "from_gguf_sha256": base.sha256, "quant": quant, "ftype": FTYPES[quant], "llama_cpp_python": LLAMA_CPP_VERSION}
    folder = cache / _key(material)
    manifest = _read_entry(folder)
    if manifest:
        return _artifact(folder, manifest, None)
    if not build:
        return None
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)

    def quantize(tmp: Path) -> None:
        worker = GgufWorker(str(base.path))
        try:
            code = worker.call("quantize", f"quantizing it to {quant}", src=str(base.path), dst=str(tmp), ftype=FTYPES[quant],
                               threads=threads or max(1, (os.cpu_count() or 2) // 2))
        finally:
            worker.close()
        if code != 0 or not tmp.is_file():
            raise DataError(f"{base.path}: llama_model_quantize to {quant} failed (return code {code}): {worker.log_tail()}")

    atomic_write_by(folder / MODEL_FILE, quantize)
    info = _inspect_new(folder / MODEL_FILE)
    manifest = {"origin": base.origin, "source": base.source, "key_material": material, "quant": quant, "normalize": base.normalize,
                "output_dim": base.output_dim, "quantized_from": {"path": str(base.path), "gguf_sha256": base.sha256},
                "dense_modules": base.manifest.get("dense_modules"), "st_modules": base.manifest.get("st_modules")}
    log.info("quantized %s to %s in %.1f s", base.path, quant, time.perf_counter() - started)
    return _finish_entry(folder, manifest, info, started)


# ---------------------------------------------------------------- given files


def given_gguf(path: Path) -> Path | None:
    """``path`` when it is a GGUF file to encode as it is (a ``.gguf`` file), else None."""
    path = path.expanduser()
    return path if path.suffix == ".gguf" and (path.is_file() or not path.exists()) else None


def st_folder(path: Path) -> Path | None:
    """The sentence-transformers directory beside a given GGUF file (its folder or the one above), if any."""
    for candidate in (path.parent, path.parent.parent):
        if (candidate / "modules.json").is_file():
            return candidate
    return None


def open_gguf(path: str | Path, quant: str = "none", *, cache_dir: str | Path | None = None) -> GgufArtifact:
    """An existing GGUF file, checked (loaded by llama.cpp in a worker); with ``quant`` other than
    ``none`` a float file is quantized once into ``cache_dir``, a file already in that format is used as it is.

    Raises:
        ConfigError: no such file, quantizing a file that is already quantized, llama-cpp-python missing.
        DataError: a corrupt, truncated or foreign file, or a crash of llama.cpp on it (named).
    """
    quant = parse_gguf_quant(quant)
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"--model {file}: no such GGUF file")
    require_runtime()
    folder = st_folder(file)
    entry = _read_entry(file.parent) if file.name == MODEL_FILE and (file.parent / MANIFEST).is_file() else None
    if entry:
        normalize, output_dim = bool(entry.get("normalize", True)), entry.get("output_dim")
    elif folder is not None:
        facts = _pipeline_facts(folder)
        normalize, output_dim = bool(facts["normalize"]), facts["dense_dim"]
    else:
        normalize, output_dim = True, None  # sentence-embedding GGUFs (EmbeddingGemma's) end with Normalize
    info = inspect_gguf(file)
    kind = _file_type(info)
    given = GgufArtifact(file.resolve(), file_sha256(file), "none", "given", str(file.resolve()), output_dim or int(info["n_embd"]), normalize,
                         file.stat().st_size, kind, entry or {})
    if quant == "none" or kind == quant:
        return GgufArtifact(**{**given.__dict__, "quant": quant})
    if kind not in _FLOAT_TYPES:
        raise ConfigError(f"--quant {quant}: {file} is already quantized ({kind}); use it with --quant none (as it is)")
    if cache_dir is None:
        raise ConfigError(f"--quant {quant} on a given GGUF file ({file}) quantizes it into the artifact cache: pass a cache directory")
    quantized = _quantized(given, Path(cache_dir), quant)
    assert quantized is not None
    return quantized


# ---------------------------------------------------------------- encoding


class GgufSentenceModel:
    """A llama.cpp worker holding one GGUF, answering sentence-transformers' ``encode``.

    Args:
        artifact: from ``convert_gguf`` or ``open_gguf``.
        max_seq_length: truncation length (the torch path's ``WeightSpec.max_seq_length``).
        prompts: the model's prompt dictionary; default_prompt_name: as sentence-transformers'.
        n_batch: tokens per llama.cpp decode call (sequences are packed into it). Runtime only.
        threads: llama.cpp threads (None: its default). Runtime only.
    """

    def __init__(self, artifact: GgufArtifact, *, max_seq_length: int, prompts: Mapping[str, str] | None = None,
                 default_prompt_name: str | None = None, n_batch: int = DEFAULT_N_BATCH, threads: int | None = None) -> None:
        if max_seq_length < 1:
            raise ConfigError(f"--max-seq-length {max_seq_length}: must be positive")
        self.artifact = artifact
        self.max_seq_length = max_seq_length
        self.n_batch = max(n_batch, max_seq_length)
        self.prompts = dict(prompts or {})
        self.default_prompt_name = default_prompt_name
        self.worker = GgufWorker(str(artifact.path))
        self.info = dict(self.worker.call("load", "loading it", path=str(artifact.path), n_ctx=self.n_batch, n_batch=self.n_batch, n_threads=threads))
        _check_embedding_model(artifact.path, self.info)
        self._dim = int(self.info["n_embd"])
        self.seen_texts: list[str] = []  # every string handed to llama.cpp's tokenizer, in order (tests read it)
        self.record_texts = False

    def get_embedding_dimension(self) -> int:
        return self._dim

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts`` as llama.cpp feeds them: its vocabulary's special tokens, truncated to ``max_seq_length``."""
        if self.record_texts:
            self.seen_texts.extend(texts)
        contents = self.worker.call("tokenize", "tokenizing", texts=list(texts))
        return [_frame(c, self.info, self.max_seq_length) for c in contents]

    def encode_query(self, texts: Sequence[str], prompt: str | None = None, **kwargs: Any) -> np.ndarray:
        return self.encode(texts, prompt=prompt if prompt is not None else self.prompts.get("query"), **kwargs)

    def encode_document(self, texts: Sequence[str], prompt: str | None = None, **kwargs: Any) -> np.ndarray:
        return self.encode(texts, prompt=prompt if prompt is not None else self.prompts.get("document"), **kwargs)

    def encode(self, texts: Sequence[str], prompt: str | None = None, batch_size: int = 32, convert_to_numpy: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        """float32 ``[n, dim]`` vectors of ``prompt + text`` (normalised when the pipeline normalises).

        ``batch_size`` caps the sequences per decode call; ``n_batch`` caps its tokens."""
        del convert_to_numpy
        if prompt is None and self.default_prompt_name:
            prompt = self.prompts.get(self.default_prompt_name)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        rendered = [(prompt or "") + t for t in texts]
        sequences = self.tokenize(rendered)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        limit = max(1, min(batch_size, int(self.info["n_seq_max"])))
        groups: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i in order:
            n = len(sequences[i])
            if current and (tokens + n > self.n_batch or len(current) >= limit):
                groups.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            groups.append(current)
        steps: Iterable[list[int]] = groups
        if show_progress_bar:
            from tqdm.auto import tqdm

            steps = tqdm(groups, desc="Batches")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for group in steps:
            vectors = np.asarray(self.worker.call("embed", "encoding", sequences=[sequences[i] for i in group]), dtype=np.float32)
            out[group] = vectors
        if not np.all(np.isfinite(out)):
            raise DataError(f"{self.artifact.path}: llama.cpp returned non-finite vectors")
        if self.artifact.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, 1e-12)
        return out

    def close(self) -> None:
        self.worker.close()


def gguf_encoder(artifact: GgufArtifact, weight_key: str, *, max_seq_length: int, prompts: Mapping[str, str] | None = None,
                 default_prompt_name: str | None = None, batch_size: int = 32, n_batch: int = DEFAULT_N_BATCH,
                 threads: int | None = None, disk_cache: Any = None, show_progress: bool = False) -> Any:
    """An ``Encoder`` (the class every backend uses) that encodes with llama.cpp; ``weight_key`` must identify the artifact."""
    from evalgemma.encode.encoder import Encoder

    model = GgufSentenceModel(artifact, max_seq_length=max_seq_length, prompts=prompts, default_prompt_name=default_prompt_name,
                              n_batch=n_batch, threads=threads)
    return Encoder(model, weight_key, batch_size=batch_size, disk_cache=disk_cache, show_progress=show_progress)
