"""tf.distribute strategies by name, as `--strategy` selects them."""
import json
import os

from fgtf.errors import ParameterError, UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name="default", tpu_address=None):
    """`default`: one device; `mirrored`: MirroredStrategy over all local GPUs
    (or the CPU); `multi_worker`: MultiWorkerMirroredStrategy configured by the
    TF_CONFIG environment variable; `tpu`: TPUStrategy (`tpu_address` or the
    environment's TPU)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise ParameterError("`strategy` multi_worker needs the TF_CONFIG environment variable "
                                 "(cluster workers and this worker's task index)")
        try:
            json.loads(config)
        except ValueError:
            raise UserError("TF_CONFIG is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy):
    """True on the worker that writes checkpoints and summaries for the run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0
                                                          and "chief" not in resolver.cluster_spec().as_dict())
