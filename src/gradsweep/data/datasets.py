"""The dataset registry: each dataset's raw files, their hashes, sizes and scaling.

Pure data (no NumPy): the Snakefile reads it while parsing, and ``gradsweep.registry`` takes
the dataset names from it.
"""

from __future__ import annotations

from dataclasses import dataclass

KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FIX = (
    "Fix: delete the file and re-run, or point the dataset's `source` in the config at a "
    "verified local copy, then re-run."
)


class DataError(ValueError):
    """A data file is missing, corrupt, truncated or not the expected version."""


@dataclass(frozen=True)
class RawFile:
    """One raw file of a dataset.

    ``sha256`` is the hash of the file exactly as served at ``url`` (None: not downloaded in
    this form). ``content_sha256`` is the hash of the decompressed IDX payload: it accepts any
    gzip copy of the same data (e.g. Debian's recompressed ``dataset-fashion-mnist``) and an
    uncompressed one.
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None

    @property
    def plain_name(self) -> str:
        """The name without ``.gz``: the uncompressed IDX file's name."""
        return self.name.removesuffix(".gz")

    @property
    def local_names(self) -> tuple[str, ...]:
        """Names a local copy may have, preferred first: uncompressed, ``.gz``, and the
        ``train-images.idx3-ubyte`` spelling of some mirrors (e.g. Kaggle's)."""
        dotted = self.plain_name.replace("-idx", ".idx")
        return (self.plain_name, self.name, dotted, f"{dotted}.gz")


@dataclass(frozen=True)
class DatasetSpec:
    """``files``: what the download rule fetches (empty: bundled with a library). ``idx``: the
    four IDX files (train images, train labels, test images, test labels) a local folder may
    hold instead, checked by ``content_sha256``; ``npz``: the one ``.npz`` file a local copy may
    be (Keras' ``mnist.npz``), checked by ``sha256``."""

    name: str
    files: tuple[RawFile, ...]
    n_train_images: int  # training images before the validation split
    n_val: int  # the last n_val training images become the validation set
    max_value: float  # pixel value that maps to 1.0
    idx: tuple[RawFile, ...] = ()
    npz: RawFile | None = None
    torchvision_dir: str | None = None  # torchvision keeps the IDX files in <root>/<this>/raw

    @property
    def n_train(self) -> int:
        """Training images after the validation split: the most a run can use."""
        return self.n_train_images - self.n_val


def _idx(name: str, content_sha256: str, url: str | None = None, sha256: str | None = None):
    return RawFile(name, url, sha256, content_sha256)


# MNIST: Keras' mnist.npz is what a download fetches. LeCun's four IDX files are accepted as a
# local copy, checked by the sha256 of the decompressed files (the same bytes in LeCun's, the
# torchvision and most mirrors' .gz, and every uncompressed copy).
_MNIST_NPZ = RawFile(
    "mnist.npz",
    KERAS_BUCKET + "mnist.npz",
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
)
_MNIST_IDX = (
    _idx(
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    _idx(
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    _idx(
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    _idx(
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
)


def _fashion(name: str, sha256: str, content_sha256: str) -> RawFile:
    return _idx(name, content_sha256, KERAS_BUCKET + name, sha256)


# Fashion-MNIST hashes: `sha256` is of the upstream .gz (Zalando's files, md5s as published in
# the zalandoresearch/fashion-mnist README; same sizes as the Keras bucket copies).
# `content_sha256` is of the decompressed IDX file; Debian's recompressed copies match it.
_FASHION_IDX = (
    _fashion(
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    _fashion(
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    _fashion(
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    _fashion(
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
)

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        files=(_MNIST_NPZ,),
        n_train_images=60_000,
        n_val=10_000,
        max_value=255.0,
        idx=_MNIST_IDX,
        npz=_MNIST_NPZ,
        torchvision_dir="MNIST",
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        files=_FASHION_IDX,
        n_train_images=60_000,
        n_val=10_000,
        max_value=255.0,
        idx=_FASHION_IDX,
        torchvision_dir="FashionMNIST",
    ),
    # scikit-learn's 8x8 digits: 1,797 images, the last 360 the test set (gradsweep's split)
    "digits": DatasetSpec("digits", (), n_train_images=1_437, n_val=360, max_value=16.0),
}
DIGITS_N_TEST = 360


def spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None
