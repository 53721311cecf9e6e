"""Keep TensorFlow's start-up lines off a command's console, and nothing else.

While TensorFlow is imported and first looks for devices, its C++ side
writes to file descriptor 2 whatever `TF_CPP_MIN_LOG_LEVEL` says (absl's
"All log messages before absl::InitializeLog() ...", oneDNN, the CUDA
stubs, and "failed call to cuInit" on a machine without a GPU): noise to a
user. `hide_tensorflow_start_up()` makes the process's first `import
tensorflow`, wherever it happens, run with descriptor 2 captured, and
replays what was captured when that import fails; before and after it,
errors and warnings reach the console as usual.

    hide_tensorflow_start_up()      # e.g. in a command's main, before anything imports TensorFlow
    with captured_stderr():         # any noisy block: its fd-2 output is kept back unless it fails
        ...
"""
import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile


def hide_tensorflow_start_up():
    """Capture fd 2 during the first import of TensorFlow (and its device
    scan) in this process; nothing happens when it is already imported."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport())


@contextlib.contextmanager
def captured_stderr():
    """Send what is written to file descriptor 2 (C++ and Python alike) to a
    temporary file while the block runs; when the block raises, write it to
    the real stderr first, so the reasons of a failure still show."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            captured.seek(0)
            os.write(saved, captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """A finder that answers for `tensorflow` once: it finds the package as
    the other finders would and runs its loading inside `captured_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports find the loaded module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def quiet_load(module):
            with captured_stderr():
                load(module)
                module.config.list_physical_devices()  # the device scan prints cuInit's error without a GPU

        spec.loader.exec_module = quiet_load
        return spec
