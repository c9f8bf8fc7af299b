"""Pretrained token embeddings that work offline: a frozen table shipped inside a pinned PyPI package.

The synth preset's text side starts from these instead of from nothing. The checkpoint references the table
(package, version, file, sha256) rather than copying it; ``load_table`` checks all four and says how to fix a
mismatch. ``wordllama`` 0.4.0.post1 (MIT) ships 32,000 x 256 fp16 embeddings distilled from Llama-2's embedding
table, next to its Llama-2 tokenizer. Its own loader looks for the tokenizer in another folder and then tries to
download, so the two files are read directly.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PinnedFile:
    path: str  # inside the package's distribution
    sha256: str


@dataclass(frozen=True)
class PinnedTable:
    package: str
    version: str
    weights: PinnedFile
    weights_key: str
    tokenizer: PinnedFile


TABLES: dict[str, PinnedTable] = {
    "wordllama-l2-supercat-256": PinnedTable(
        package="wordllama", version="0.4.0.post1",
        weights=PinnedFile("wordllama/weights/l2_supercat_256.safetensors",
                           "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"),
        weights_key="embedding.weight",
        tokenizer=PinnedFile("wordllama/tokenizers/l2_supercat_tokenizer_config.json",
                             "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68"),
    ),
}


def _check_name(name: str) -> PinnedTable:
    if name not in TABLES:
        raise ValueError(f"unknown pretrained table {name!r}; known: {sorted(TABLES)}")
    return TABLES[name]


def _locate(spec: PinnedTable, file: PinnedFile) -> Path:
    fix = f"pip install {spec.package}=={spec.version}"
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"the pretrained token table needs the package {spec.package} {spec.version}: {fix}") from None
    if dist.version != spec.version:
        raise ValueError(f"the pretrained token table was made with {spec.package} {spec.version}, "
                         f"found {dist.version}: {fix}")
    path = Path(dist.locate_file(file.path))
    if not path.is_file():
        raise ValueError(f"{spec.package} {spec.version} is installed but {file.path} is missing: reinstall, {fix}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != file.sha256:
        raise ValueError(f"{path} has sha256 {digest}, expected {file.sha256}: reinstall, {fix}")
    return path


def tokenizer_file(name: str) -> str:
    """Path of the table's tokenizer (tokenizers JSON), checked."""
    spec = _check_name(name)
    return str(_locate(spec, spec.tokenizer))


@lru_cache(maxsize=2)
def load_table(name: str) -> np.ndarray:
    """The (vocab, dim) float32 table, checked (read once per process; treat it as read-only)."""
    from safetensors.numpy import load_file

    spec = _check_name(name)
    table = load_file(str(_locate(spec, spec.weights)))[spec.weights_key].astype(np.float32)
    table.setflags(write=False)
    return table
