"""One process at a time per output folder: an advisory lock held while a
command writes there.

    with hold_folder("runs/cub"):            # a second process: FolderBusy, naming this one
        train(...)

    with hold_folder("exported/v3", beside=True):   # a folder that appears whole at the end
        export(...)

The lock is `flock` on a small file, `<folder>/.fgtf.lock` (or
`<parent>/.<folder>.fgtf.lock` beside a folder that does not exist until it is
renamed into place), which also names the holder: its process id, host and
command line. The kernel drops the lock when its process ends, however it
ends, so a lock left by a killed process is simply taken over (with a note
naming it); a clean release removes the file again. `shared=True` lets
several holders in (the shard ranges of one conversion written by several
processes) while keeping out an exclusive one. A process may hold a folder
it already holds (nested calls in one process, such as the study's). On a
shared file system the lock reaches other machines as far as the file
system carries `flock` (NFS does).
"""
import contextlib
import fcntl
import json
import os
import socket
import sys

from tfrecord_tools.errors import UserError

LOCK_FILE = ".fgtf.lock"

# lock file path -> [open handle, holds]: the folders this process holds
_held = {}


class FolderBusy(UserError):
    """Another process holds the folder; the message names it."""


@contextlib.contextmanager
def hold_folder(folder, *, shared=False, beside=False):
    """Hold `folder` for the block (created when missing; folders created
    here and left empty are removed again). Raises `FolderBusy` at once when
    another process holds it."""
    folder = os.path.abspath(folder)
    lock_path = lock_file(folder, beside)
    created = _highest_missing(os.path.dirname(lock_path))
    try:
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write to output folder {folder} ({error.strerror or error})") from None
    if lock_path in _held:
        _held[lock_path][1] += 1
        try:
            yield
        finally:
            _held[lock_path][1] -= 1
        return
    handle, left_by = _acquire(folder, lock_path, shared)
    if left_by:
        print(f"note: taking over the lock of {folder} left by {left_by}, which has ended", file=sys.stderr)
    _held[lock_path] = [handle, 1]
    try:
        yield
    finally:
        del _held[lock_path]
        _release(handle, lock_path)
        _remove_empty(os.path.dirname(lock_path), created)


def lock_file(folder, beside=False):
    """The lock file of `folder`: inside it, or beside it for a folder that appears whole."""
    folder = os.path.abspath(folder)
    if beside:
        parent, name = os.path.split(folder)
        return os.path.join(parent, f".{name}{LOCK_FILE}")
    return os.path.join(folder, LOCK_FILE)


def holder(lock_path):
    """The holder a lock file names ('process 123 on host: fgtf train ...'), or None."""
    try:
        with open(lock_path, encoding="utf-8") as handle:
            return _describe(handle.read())
    except OSError:
        return None


def _highest_missing(path):
    """The outermost of `path` and its parents that does not exist (None: `path` exists)."""
    missing = None
    while not os.path.isdir(path):
        missing, path = path, os.path.dirname(path)
    return missing


def _remove_empty(path, top):
    """Remove `path` and its parents up to `top` (folders this process made) while they are empty."""
    if top is None:
        return
    while True:
        try:
            os.rmdir(path)
        except OSError:  # not empty: something was written there, keep it
            return
        if path == top:
            return
        path = os.path.dirname(path)


def _acquire(folder, lock_path, shared):
    """(open handle holding the lock, description of a killed holder whose
    record was left in the file, or None)."""
    while True:
        handle = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            named = _describe(handle.read())
            handle.close()
            raise FolderBusy(f"{folder} is in use by {named or 'another process'}; wait for it to finish, or "
                             f"stop it (its lock is {lock_path})") from None
        # The file may have been removed by the holder that just released it:
        # a lock on a removed file locks nothing, so start again on the new one.
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    handle.seek(0)
    left = handle.read()  # an exclusive holder finds a record only when its writer was killed
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command()}) + "\n")
    handle.flush()
    return handle, (None if shared else _describe(left))


def _release(handle, lock_path):
    """Remove the lock file while still holding it (the next holder then makes
    a new one), then let go. Shared holders leave it to the last of them."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds when no other holder remains
        os.remove(lock_path)
    except (BlockingIOError, FileNotFoundError):
        pass
    finally:
        handle.close()


def _forget_in_child():
    """A forked child (a conversion's worker) does not hold its parent's
    folders: it closes its copies of their lock files, so that the lock ends
    with the parent, not with the last of its children."""
    for handle, _ in _held.values():
        handle.close()
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _describe(text):
    """'process 123 on host: fgtf train ...' from a lock file's record."""
    try:
        record = json.loads(text.splitlines()[0])
        return f"process {int(record['pid'])} on {record['host']} ({record['command']})"
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _command():
    """The command line of this process as the user typed it (`fgtf train ...`,
    `python -m fgtf.train ...`), shortened to 200 characters."""
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if not invoked.startswith("fgtf ") and spec is not None and spec.name:
        invoked = f"python -m {spec.name.removesuffix('.__main__')}"
    text = " ".join([invoked, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."
