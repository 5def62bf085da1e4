"""Atomic writes: a file or a folder appears whole under its final name, or not at all.

`tempfile.mkstemp` and `mkdtemp` create private (`0600` / `0700`) entries, and so do some writers (safetensors 0.8
writes `0600` files); what is renamed into place here gets the permissions a plain `open(path, "w")` or `os.makedirs`
would give instead (`0666` / `0777` less the umask).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "WriteLock",
    "apply_umask",
    "check_output_dir",
    "file_fingerprint",
    "files_digest",
    "make_staging_dir",
    "remove_leftovers",
    "replace_dir",
    "write_atomically",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(folder: str | os.PathLike) -> None:
    """Give `folder`, and every file and folder in it, the permissions of a plain write: `0777` / `0666` less the umask.

    For a staging folder about to be renamed into place, whose files were written by code that makes them private.
    """
    mask = _umask()
    for root, _folders, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(temporary)` into a temporary file beside `path`, then rename it to `path` (no half-written file).

    Example:

    ```python
    >>> write_atomically("results.json", lambda path: path.write_text("{}"))  # doctest: +SKIP
    ```
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def make_staging_dir(target: str | os.PathLike, tag: str = "tmp") -> Path:
    """A new empty folder beside `target` (hidden, named after it), to be filled and then renamed to `target`."""
    target = Path(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target`, replacing an existing `target` with only a short window without either."""
    if not target.exists():
        os.replace(source, target)
        return
    backup = make_staging_dir(target, "old")
    backup.rmdir()
    os.replace(target, backup)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def check_output_dir(
    output_dir: str | os.PathLike, *, overwrite: bool = False, written_by: Sequence[str] = ()
) -> None:
    """Whether a writer may put its folder at `output_dir`: free when it does not exist or is empty; else only with
    `overwrite`, and then only when it holds what the writer writes (one of the file names `written_by`, e.g.
    `config.json` for a model repo): a folder of anything else is never replaced. Raises `FileExistsError` saying
    which case it is.

    Example:

    ```python
    >>> check_output_dir("out/new-repo", overwrite=True, written_by=["config.json"])  # doctest: +SKIP
    ```
    """
    output_dir = Path(output_dir)
    if not output_dir.exists() or (output_dir.is_dir() and not any(output_dir.iterdir())):
        return
    if not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} is a file, not a folder: choose another output folder.")
    if not overwrite:
        raise FileExistsError(
            f"{output_dir} already exists and is not empty: pass `overwrite=True` to replace it, or "
            "choose another output folder."
        )
    if written_by and not any((output_dir / name).is_file() for name in written_by):
        raise FileExistsError(
            f"{output_dir} holds something else than what this command writes (none of {', '.join(written_by)}): it "
            "is not replaced, even with `overwrite=True`. Choose another output folder, or empty that one yourself."
        )


def file_fingerprint(path: str | os.PathLike) -> str:
    """`"<size>:<mtime in ns>"` of a file (`"missing"` when there is none): it changes when the file is rewritten.

    Example:

    ```python
    >>> file_fingerprint("video.mp4")  # doctest: +SKIP
    '1048576:1733443200000000000'
    ```
    """
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def files_digest(paths: list[Path]) -> str:
    """A SHA-256 digest of the names, sizes and contents of `paths` (in the order given)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class WriteLock:
    """One writer of an output at a time: `.NAME.lock` beside it names the process writing it.

    A second writer is refused with a `FileExistsError` that names the first. A lock left by a process that no longer
    runs (killed, or its machine restarted) on this machine is taken over; one of another machine (a shared disk) is
    refused with the way out, since it cannot be checked from here.

    Example:

    ```python
    >>> with WriteLock("features.parquet"):  # doctest: +SKIP
    ...     remove_leftovers("features.parquet")
    ...     write()
    ```
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = self.target.parent / f".{self.target.name}.lock"
        self.owner = f"{os.getpid()}@{socket.gethostname()}"

    def __enter__(self) -> WriteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(self.owner)
            return self

    def _take_over_if_stale(self) -> None:
        try:
            owner = self.path.read_text().strip()
        except FileNotFoundError:  # released meanwhile
            return
        pid, _, host = owner.partition("@")
        if host == socket.gethostname() and pid.isdigit() and not _running(int(pid)):
            self.path.unlink(missing_ok=True)  # its writer is gone
            return
        where = f"process {pid}" + (f" on {host}" if host != socket.gethostname() else "")
        raise FileExistsError(
            f"{self.target} is being written by another run ({where}): wait for it to finish or stop it. If that run "
            f"is gone, delete {self.path}."
        )

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.path.read_text().strip() == self.owner:
                self.path.unlink()
        except FileNotFoundError:
            pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(target: str | os.PathLike) -> list[Path]:
    """Remove what an interrupted writer of `target` left beside it: the temporary files of [`write_atomically`] and
    the folders of [`make_staging_dir`] (hidden `.NAME.*` entries; its lock and resumable `.NAME.parts` are kept).
    Call it while holding the target's [`WriteLock`]. Returns what was removed."""
    target = Path(target)
    removed = []
    for path in target.parent.glob(f".{target.name}.*"):
        if path.name in (f".{target.name}.lock", f".{target.name}.parts"):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
