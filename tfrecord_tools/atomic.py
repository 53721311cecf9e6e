"""Atomic file output: a reader (or a crash) never sees half a file.

    with atomic_path("out/train_00000-of-00010.tfrecord") as temporary:
        write(temporary)          # then fsync'd and renamed over the target
"""
import contextlib
import os


@contextlib.contextmanager
def atomic_path(path):
    """Yield a hidden temporary path beside `path`; when the block succeeds the
    file is flushed to disk and renamed over `path` in one step, when it fails
    the temporary is removed. The temporary keeps `path`'s suffix (writers
    such as numpy, matplotlib and Keras choose the format by it)."""
    temporary = temporary_name(path)
    os.makedirs(os.path.dirname(temporary), exist_ok=True)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def temporary_name(path):
    """`dir/x.weights.h5` -> `dir/.x.tmp-<pid>.weights.h5`."""
    directory, name = os.path.split(os.path.abspath(path))
    stem, dot, suffix = name.partition(".")
    return os.path.join(directory, f".{stem}.tmp-{os.getpid()}{dot}{suffix}")


def is_temporary_of(candidate, name):
    """True when the file name `candidate` is a temporary of the file name `name`
    (left behind by a killed writer of any process)."""
    stem, dot, suffix = name.partition(".")
    return candidate.startswith(f".{stem}.tmp-") and candidate.endswith(f"{dot}{suffix}")
