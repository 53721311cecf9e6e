"""Atomic file output: a reader (or a crash) never sees half a file or folder.

    with atomic_path("out/train_00000-of-00010.tfrecord") as temporary:
        write(temporary)          # then fsync'd and renamed over the target

    with atomic_dir("merged") as building:
        fill(building)            # then renamed to "merged"; on error removed
"""
import contextlib
import os
import re
import shutil

# What `temporary_name` makes: `.<stem>.tmp-<pid>` and its suffix, if any.
_TEMPORARY = re.compile(r"^\.[^.]*\.tmp-\d+(\..*)?$")


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


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a hidden temporary folder beside the folder `path`, which must not
    exist yet; when the block succeeds the folder is renamed to `path` in one
    step, when it fails it is removed with everything in it. (Files written
    inside should still use `atomic_path`, which flushes them to disk.)"""
    if os.path.lexists(path):
        raise FileExistsError(f"{path} already exists")
    temporary = temporary_name(path.rstrip(os.sep))
    os.makedirs(temporary)
    try:
        yield temporary
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def temporary_name(path):
    """`dir/x.weights.h5` -> `dir/.x.tmp-<pid>.weights.h5`."""
    directory, name = os.path.split(os.path.abspath(path))
    stem, dot, suffix = name.partition(".")
    return os.path.join(directory, f".{stem}.tmp-{os.getpid()}{dot}{suffix}")


def remove_temporaries(folder):
    """Remove every temporary of `atomic_path` and `atomic_dir` in `folder`
    (left by killed writers). Only for a folder this process holds (see
    `folder_lock`): a live writer's temporaries look the same."""
    for name in os.listdir(folder):
        if _TEMPORARY.match(name):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


def is_temporary_of(candidate, name):
    """True when the file name `candidate` is a temporary of the file name `name`
    (left behind by a killed writer of any process)."""
    stem, dot, suffix = name.partition(".")
    return candidate.startswith(f".{stem}.tmp-") and candidate.endswith(f"{dot}{suffix}")
