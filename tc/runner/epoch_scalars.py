"""TensorBoard scalars of a run: every column of metrics.csv, at metrics.csv's epochs.

`EpochScalars(logdir).write(rows)` writes the rows it has not written yet, one classic scalar
summary (`simple_value`) per column, tagged with the column's name (`train/loss`,
`val/accuracy`, `test/ece`, `rank/features`, `learning_rate`, `beta`, ...) at step = the row's
`epoch`, 1-based as in metrics.csv. The run directory calls it on its commit thread once a row
is complete (test metrics and ranks included), so training never waits for it and nothing is
read per step, unlike Keras's TensorBoard callback, which reads every step's logs.

It writes TensorBoard's event file format (TFRecord-framed `Event` protos, through the
`tensorboard` package's record writer) to a local file, never through TensorFlow: TensorBoard's
own `EventFileWriter` imports TensorFlow when it is installed (3 s, on the commit thread, beside
training), and the JAX machines have none. Without the `tensorboard` package, `available()` is
False.
"""

import math
import os
import socket
import time


def available():
    """Whether the `tensorboard` package (its protos and record writer) can be imported."""
    try:
        from tensorboard.summary.writer import record_writer  # noqa: F401
    except ImportError:
        return False
    return True


class EpochScalars:
    """Writes metrics.csv rows to an event file in `logdir` (created on the first write).

    `already_written` rows (those of the run before a resume) are skipped.
    """

    def __init__(self, logdir, already_written=0):
        self.logdir = logdir
        self.written = already_written
        self._writer = None

    def write(self, rows):
        """Writes `rows[self.written:]`; each row is `{"epoch": n, column: number, ...}`."""
        if len(rows) <= self.written:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer import record_writer

        if self._writer is None:
            os.makedirs(self.logdir, exist_ok=True)
            name = (f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}."
                    f"{os.getpid()}.tc")
            self._writer = record_writer.RecordWriter(open(os.path.join(self.logdir, name), "ab"))
            self._writer.write(event_pb2.Event(wall_time=time.time(),
                                               file_version="brain.Event:2").SerializeToString())
        for row in rows[self.written:]:
            values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value))
                      for name, value in row.items()
                      if name != "epoch" and isinstance(value, (int, float))
                      and not isinstance(value, bool) and math.isfinite(value)]
            self._writer.write(event_pb2.Event(
                wall_time=time.time(), step=int(row["epoch"]),
                summary=summary_pb2.Summary(value=values)).SerializeToString())
        self._writer.flush()
        self.written = len(rows)

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
