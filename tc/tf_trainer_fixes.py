"""Two fixes that let Keras 3's TensorFlow trainer `fit` under MultiWorkerMirroredStrategy,
applied by `tc.distribute` for `--strategy=multi_worker`. Each wraps a Keras internal, acts only
when the strategy is multi-worker, and leaves every other strategy to Keras unchanged.

1. **Building the model.** Before training, `fit` builds the model symbolically from one batch,
   which it first averages over the replicas with `strategy.reduce("MEAN", batch, axis=None)`.
   Across workers that reduce fails on the nested (x, y) batch. The fix builds from the
   dataset's element spec, which carries the shapes and dtypes the symbolic build needs.
2. **Logging.** Keras reduces each per-step log with `strategy.reduce("MEAN", value, axis=0)`
   across workers, which fails on the scalar losses and metrics (keras-team/keras#20585). A
   scalar is reduced with `axis=None` instead: the mean over replicas, the value a one-host run
   logs.
"""

import keras
from keras.src.backend.tensorflow import trainer as tf_trainer

_MARK = "_tc_fixed"


def _build_from_element_spec(original):
    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if (iterator is not None and data_batch is None
                and tf_trainer._collective_all_reduce_multi_worker(self.distribute_strategy)):
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec
            iterator = None
        return original(self, iterator=iterator, data_batch=data_batch)

    return maybe_symbolic_build


def _reduce_scalars_without_axis(original):
    def reduce_per_replica(values, strategy, reduction):
        if (reduction not in ("auto", "mean")
                or not tf_trainer._collective_all_reduce_multi_worker(strategy)):
            return original(values, strategy, reduction)

        def reduce_one(value):
            if value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return keras.tree.map_structure(reduce_one, values)

    return reduce_per_replica


def apply():
    """Installs both fixes; calling it again does nothing."""
    trainer_class = tf_trainer.TensorFlowTrainer
    if not getattr(trainer_class._maybe_symbolic_build, _MARK, False):
        fixed = _build_from_element_spec(trainer_class._maybe_symbolic_build)
        setattr(fixed, _MARK, True)
        trainer_class._maybe_symbolic_build = fixed
    if not getattr(tf_trainer.reduce_per_replica, _MARK, False):
        fixed = _reduce_scalars_without_axis(tf_trainer.reduce_per_replica)
        setattr(fixed, _MARK, True)
        tf_trainer.reduce_per_replica = fixed
