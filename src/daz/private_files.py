"""The data directory holds chat lines, PMs and the web login token: only daz's user may read it.

The directory is made (or tightened to) 0700 and every file daz writes in it is created 0600,
whatever the umask says; a file an older daz left readable by others is tightened the next time
it is written. Renamed-into-place files are created private before anything is written to them,
so there is no moment at which another user could open them.

One exception: daz running as root with the embedded PostgreSQL. The cluster then belongs to
the system user ``daz_postgres`` (PostgreSQL refuses root), which must pass through the data
directory to reach ``postgres/``; the directory's group becomes that user's and gets traverse
(0710), never read, and nothing for others.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed and make it 0700 when it is ours; files of
    ours directly in it (an older daz's spill or held writes) become 0600; the journal
    directory is made private the same way when it is opened."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            _tighten(Path(entry.path), FILE_MODE)
    return path


def _tighten(path: Path, allowed: int) -> None:
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == _uid() and mode & ~allowed:
        path.chmod(mode & allowed)


def open_private(path: Path, mode: str = "a", *, encoding: str | None = "utf-8") -> IO:
    """``open(path, mode)`` for a file only its owner may read: created 0600, tightened to 0600
    when it already exists. Modes: "a", "w", "ab", "wb"."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:  # not ours (a shared mount): the owner's choice stands
        pass
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


def _uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1
