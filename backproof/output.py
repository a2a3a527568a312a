"""Files backproof writes (report pages, figures, weights, imported scenarios): regular files only, all of one or
nothing, and only where the user said.

``check_writable`` refuses an output path before any work is done, in one line: a folder, a device node, a FIFO, a
socket or a symbolic link is never written to or replaced (run as root, replacing /dev/full with a page is possible);
``replacing`` hands out a temporary file beside the target, with the target's suffix (matplotlib goes by it), and
puts it in place only when the writer finished, so a failure, a full disk or Ctrl-C never leaves a half-written file
or clobbers the old one. ``file_name`` turns a scenario's name into a file name that stays inside its folder.
"""

import contextlib
import os
import stat
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written; str() is one line (exit code 2)."""


def _folder(path):
    return path.parent if str(path.parent) else Path(".")


def shown(path):
    """A path as one safe line: quoted with its escapes when it is empty or holds a control character."""
    text = str(path)
    return repr(text) if not text or any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def check_writable(path):
    """OutputError unless ``path`` can be written: its folder exists and is writable, and it is absent or a regular
    file (never a folder, a device node, a FIFO, a socket or a symbolic link)."""
    if not str(path):
        raise OutputError("an empty output path: name a file")
    if "\0" in str(path):
        raise OutputError(f"{shown(path)}: a path cannot hold a NUL character")
    path = Path(path)
    problem = _not_regular(path)
    if problem:
        raise OutputError(f"{shown(path)}: {problem}")
    folder = _folder(path)
    if not folder.is_dir():
        raise OutputError(f"{shown(path)}: the folder {shown(folder)} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{shown(path)}: cannot be written (permission denied)")


def _not_regular(path):
    """Why ``path`` must not be written ('' when it is absent or a regular file)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if stat.S_ISREG(mode):
        return ""
    kind = ("a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) else
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a device node" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"is {kind}, not an output file; backproof writes regular files only"


def file_name(name, suffix):
    """A scenario's name as a file name inside its folder: every character but letters, digits, '-', '_' and '.'
    becomes '_', and a leading '.' too (so '../x' is '_._x', never a way out of the folder)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(name)) or "scenario"
    return ("_" + safe[1:] if safe.startswith(".") else safe) + suffix


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block ends normally it becomes ``path`` (with the usual
    permissions, not mkstemp's 0600), otherwise it is removed."""
    path = Path(path)
    problem = _not_regular(path)
    if problem:
        raise OutputError(f"{shown(path)}: {problem}")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=_folder(path))
    except OSError as exc:
        raise OutputError(f"{shown(path)}: cannot be written ({exc.strerror})") from None
    os.close(descriptor)
    try:
        try:
            yield temporary
        except OSError as exc:          # a full disk, a quota, a vanished folder: one line, nothing left behind
            raise OutputError(f"{shown(path)}: cannot be written ({exc.strerror or exc})") from None
        os.chmod(temporary, 0o666 & ~_umask())
        problem = _not_regular(path)            # it may have become a FIFO or a link since the check
        if problem:
            raise OutputError(f"{shown(path)}: {problem}")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path``: all of it or nothing."""
    with replacing(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")
