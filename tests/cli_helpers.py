"""Running a command-line module the way a user does, for the CLI tests."""
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    """Run `python -m ARGS...` from this checkout with TensorFlow's log level
    left unset: (exit code, stdout, stderr, seconds)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


HEAVY_FRAMEWORKS = frozenset({"tensorflow", "keras", "jax", "torch"})


def frameworks_imported(module, *args):
    """The heavy frameworks (of HEAVY_FRAMEWORKS) that `python -m MODULE ARGS...`
    imports: what makes a command slow to answer, asserted instead of a wall
    time, which would race the machine's load."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{module!r}, *{list(args)!r}]\n"
            "try:\n"
            f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
            "except SystemExit:\n"
            "    pass\n"
            "sys.stdout.flush()\n"
            f"print('FRAMEWORKS', *sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY_FRAMEWORKS)!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    return set(done.stdout.strip().splitlines()[-1].split()[1:])
