"""Datasets, in four parts:

- :mod:`~gradsweep.data.datasets`: the registry (raw files, hashes, sizes, scaling);
- :mod:`~gradsweep.data.fetch`: downloads (pooch) and sha256 checks;
- :mod:`~gradsweep.data.readers`: IDX, ``mnist.npz`` and scikit-learn digits readers;
- :mod:`~gradsweep.data.locate` and :mod:`~gradsweep.data.splits`: where the raw files are
  (local ``source``, Debian, downloads), and the train/validation/test split.

Raw files are checked by sha256 before use, and every file written goes to a temporary name
beside its destination and is renamed into place only when complete (and verified), so a file
that exists is whole. The names below are the package's interface.
"""

from gradsweep.data.datasets import (
    DATASETS,
    DIGITS_N_TEST,
    KERAS_BUCKET,
    DataError,
    DatasetSpec,
    RawFile,
    spec,
)
from gradsweep.data.fetch import (
    download,
    sha256_file,
    verify_raw_file,
    verify_raw_files,
    verify_sha256,
)
from gradsweep.data.locate import (
    DEBIAN_FASHION_DIR,
    RAW_DIR,
    SourceError,
    accepted_forms,
    download_targets,
    raw_files,
    source_files,
)
from gradsweep.data.readers import load_raw, read_idx, read_mnist_npz
from gradsweep.data.splits import (
    ALIGNMENT,
    SPLIT_KEYS,
    Splits,
    load_prepared,
    prepare,
    split_and_scale,
)

__all__ = [
    "ALIGNMENT",
    "DATASETS",
    "DEBIAN_FASHION_DIR",
    "DIGITS_N_TEST",
    "KERAS_BUCKET",
    "RAW_DIR",
    "SPLIT_KEYS",
    "DataError",
    "DatasetSpec",
    "RawFile",
    "SourceError",
    "Splits",
    "accepted_forms",
    "download",
    "download_targets",
    "load_prepared",
    "load_raw",
    "prepare",
    "raw_files",
    "read_idx",
    "read_mnist_npz",
    "sha256_file",
    "source_files",
    "spec",
    "split_and_scale",
    "verify_raw_file",
    "verify_raw_files",
    "verify_sha256",
]
