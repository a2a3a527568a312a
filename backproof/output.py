"""Files backproof writes (report pages, figures, weights, imported scenarios): all of one or nothing.

``check_writable`` refuses an output path before any work is done, in one line; ``replacing`` hands out a
temporary file beside the target, with the target's suffix (np.savez and matplotlib go by it), and puts it in
place only when the writer finished, so a failure or Ctrl-C never leaves a half-written file or clobbers the
old one.
"""

import contextlib
import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written; str() is one line (exit code 2)."""


def _folder(path):
    return path.parent if str(path.parent) else Path(".")


def check_writable(path):
    """OutputError unless ``path`` can be written (its folder exists and is writable; it is not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, not an output file")
    folder = _folder(path)
    if not folder.is_dir():
        raise OutputError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{path}: cannot be written (permission denied)")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block ends normally it becomes ``path`` (with the usual
    permissions, not mkstemp's 0600), otherwise it is removed."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=_folder(path))
    os.close(descriptor)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path``: all of it or nothing."""
    with replacing(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")
