"""Output folders, checked before any work: created if needed, proven writable, removed again if unused.

``varprop report`` computes for seconds before it writes; a folder it cannot write must be refused
first. ``OutputFolder.prepare`` creates the folder (and its parents), writes and deletes a probe file
in it, and checks that none of the files to be written is a folder; ``remove_if_unused`` removes
again the folders it created when the work failed before writing anything into them.
"""

from __future__ import annotations

import contextlib
import errno
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import VarpropValueError

__all__ = ["OutputFolder"]


@dataclass(frozen=True)
class OutputFolder:
    """A folder ready to be written, and the folders created to make it.

    Attributes:
        path: the folder.
        created: folders that did not exist before ``prepare`` (outermost first).
    """

    path: Path
    created: tuple[Path, ...] = ()

    @classmethod
    def prepare(cls, path: str | Path, *, name: str, files: Iterable[str] = ()) -> OutputFolder:
        """Create ``path`` if needed and check that files can be written in it.

        Args:
            path: the output folder.
            name: what the user called it, for messages (``"--out"``, ``"out_dir"``).
            files: names of files that will be written there (each must not be a folder).

        Returns:
            The prepared folder.

        Raises:
            VarpropValueError: a part of the path is a file, the folder cannot be created or written,
                or one of ``files`` is a folder. The message names ``name``, the path and the reason.
        """
        folder = Path(path)
        shown = f"{name} {str(path)!r}"
        missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
        existing = folder.parents[len(missing) - 1] if missing else folder
        if not existing.is_dir():  # e.g. --out a_file/sub, or --out a_file
            raise VarpropValueError(f"{shown} cannot be used as an output folder: {str(existing)!r} is a file")
        created = tuple(reversed(missing))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder, prefix=".varprop-write-test-"):
                pass
        except OSError as exc:
            _remove_empty(created)
            raise VarpropValueError(f"{shown} cannot be used as an output folder: {_reason(exc)}") from exc
        for file_name in files:
            if (folder / file_name).is_dir():
                _remove_empty(created)
                raise VarpropValueError(f"{shown}: {str(folder / file_name)!r} is a folder, where a file is written")
        return cls(folder, created)

    def remove_if_unused(self) -> None:
        """Remove the folders ``prepare`` created, as long as they are still empty."""
        _remove_empty(self.created)


def _remove_empty(folders: tuple[Path, ...]) -> None:
    for folder in reversed(folders):  # innermost first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _reason(exc: OSError) -> str:
    """Why a folder cannot be written (without the probe file's random name)."""
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "no permission to write there"
    return exc.strerror or type(exc).__name__
