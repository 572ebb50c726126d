"""Where a dataset's raw files are: a configured local ``source``, Debian's package, or the
download folder; and which registry entry each file is."""

from __future__ import annotations

from pathlib import Path

from gradsweep.data.datasets import DataError, DatasetSpec, RawFile, spec

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_DIR = "resources/raw"


class SourceError(DataError):
    """A configured ``source`` holds no accepted form of the dataset."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__(f"{problem}. Accepted: {allowed}")
        self.problem, self.allowed = problem, allowed


def accepted_forms(dataset: str) -> str:
    """The local copies a dataset's ``source`` may name, in words (for messages and docs)."""
    sp = spec(dataset)
    if not sp.files:
        return "none: the data is bundled with its library, so drop `source`"
    forms = []
    if sp.npz:
        forms.append(
            f"Keras' {sp.npz.name} (the file, or a folder holding it such as ~/.keras/datasets)"
        )
    if sp.idx:
        names = ", ".join(f.plain_name for f in sp.idx)
        forms.append(
            f"a folder with the four IDX files {names} (each .gz or uncompressed; "
            "'train-images.idx3-ubyte' spellings too)"
        )
    if sp.torchvision_dir:
        tv = sp.torchvision_dir
        forms.append(f"torchvision's download folder (<root>, <root>/{tv} or <root>/{tv}/raw)")
    return "; or ".join(forms)


def match(sp: DatasetSpec, files: list[Path]) -> list[tuple[Path, RawFile]]:
    """Each file with its registry entry: none (a bundled dataset), one ``.npz`` (a local copy
    may have any name), or the four IDX files matched by name (``RawFile.local_names``), in
    registry order."""
    files = [Path(f) for f in files]
    if not files and not sp.files:  # bundled with its library: nothing to match
        return []
    if len(files) == 1 and sp.npz is not None:
        return [(files[0], sp.npz)]
    if sp.idx and len(files) == len(sp.idx):
        out = []
        for raw in sp.idx:
            hits = [f for f in files if f.name in raw.local_names]
            if len(hits) != 1:
                break
            out.append((hits[0], raw))
        else:
            return out
    raise DataError(
        f"{sp.name}: {[str(f) for f in files]} is not a known form of the dataset; accepted: "
        f"{accepted_forms(sp.name)}"
    )


def _idx_in(folder: Path, sp: DatasetSpec) -> tuple[list[Path], list[str]]:
    """The IDX files of ``sp`` in ``folder`` (uncompressed preferred) and the missing names."""
    found, missing = [], []
    for raw in sp.idx:
        hits = [folder / name for name in raw.local_names if (folder / name).is_file()]
        if hits:
            found.append(hits[0])
        else:
            missing.append(raw.plain_name)
    return found, missing


def _find_in(src: Path, sp: DatasetSpec) -> list[Path]:
    """The files of one accepted form in the folder ``src``, or SourceError saying what is
    there instead."""
    folders = [src, src / "raw"]
    if sp.torchvision_dir:
        folders.append(src / sp.torchvision_dir / "raw")
    partial: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        if sp.idx:
            found, missing = _idx_in(folder, sp)
            if not missing:
                return found
            if found:
                partial.append(
                    f"{folder} has {', '.join(p.name for p in found)} but not {', '.join(missing)}"
                )
        if sp.npz is not None and (folder / sp.npz.name).is_file():
            return [folder / sp.npz.name]
    if not partial:
        names = sorted(p.name for p in src.iterdir())
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        partial.append(f"{src} holds {shown}" if names else f"{src} is empty")
    problem = f"{src}: no complete {sp.name} copy; found: {'; '.join(partial)}"
    raise SourceError(problem, accepted_forms(sp.name))


def source_files(dataset: str, source: str | None) -> list[Path]:
    """Local raw files for ``dataset``, or ``[]`` if they must be downloaded (or none needed).

    ``source`` may be any form :func:`accepted_forms` lists. Without it, fashion_mnist uses
    Debian's ``dataset-fashion-mnist`` copies if all four are installed. Only names are
    checked here; the prepare step checks every file's hash.
    """
    sp = spec(dataset)
    allowed = accepted_forms(dataset)
    if not sp.files:
        if source:
            raise SourceError(f"dataset {dataset!r} is bundled with its library", allowed)
        return []
    if source:
        src = Path(source).expanduser()
        if src.is_file() and sp.npz is not None:
            return [src]
        if not src.is_dir():
            what = "a file, not a folder" if src.exists() else "no such file or folder"
            raise SourceError(f"{src}: {what}", allowed)
        return _find_in(src, sp)
    if dataset == "fashion_mnist" and DEBIAN_FASHION_DIR.is_dir():
        found, missing = _idx_in(DEBIAN_FASHION_DIR, sp)
        return [] if missing else found
    return []


def download_targets(dataset: str) -> dict[str, tuple[str, str]]:
    """``{filename: (url, sha256)}`` of the files a download rule fetches ({} for digits)."""
    return {f.name: (str(f.url), str(f.sha256)) for f in spec(dataset).files}


def raw_files(dataset: str, source: str | None = None, raw_dir: str = RAW_DIR) -> list[str]:
    """Paths the prepare step reads: local copies, else ``<raw_dir>/<dataset>/<filename>``."""
    local = source_files(dataset, source)
    if local:
        return [str(p) for p in local]
    return [f"{raw_dir}/{dataset}/{name}" for name in download_targets(dataset)]
