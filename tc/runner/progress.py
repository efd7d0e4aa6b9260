"""The progress line of `tc.train`: steps, rate and ETA as training runs, metrics per epoch.

Keras's progress bar reads every step's logs, which on JAX makes the host wait for the device at
each step: with it, `tc.train` ran at 0.52x of a bare `fit` on an H200. `ProgressLine` reads no
step logs. After each step it is only told the step's index (`tick`), and draws, at most
`redraw_seconds` apart, what the host knows without asking the device:

    epoch 3/30  [=========>           ] 212/469  41,020 img/s  ETA 0:06

The metric values appear once per epoch, from the logs `fit` passes to `on_epoch_end`, which the
epoch-end evaluation has already brought to the host:

    epoch 3/30  469 steps  6.1 s  41,020 img/s  loss 0.4123  accuracy 0.8812  val_accuracy 0.8790

A packed sweep shows each value's range over its copies (`min-max over K copies`). With
`verbose=2`, or when the output is not a terminal, only the epoch lines are written. The rate
counts dispatched steps, which the device's queue keeps within a few steps of the computed ones.
"""

import sys
import time

import keras

# The values an epoch line shows, in this order, when the logs hold them: the rest (NLL, ECE,
# MCE, logit norms) are in metrics.csv and TensorBoard.
SHOWN = ("loss", "accuracy", "val_loss", "val_accuracy", "beta")


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _value_text(values):
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{min(values):.4g}-{max(values):.4g}"


def epoch_summary(member_logs):
    """`name value` for each `SHOWN` entry of the members' logs: one value, or a range."""
    parts = []
    for name in SHOWN:
        values = [float(logs[name]) for logs in member_logs if name in logs]
        if values:
            parts.append(f"{name} {_value_text(values)}")
    return "  ".join(parts)


class ProgressLine(keras.callbacks.Callback):
    """`fit`'s progress without reading step logs (see the module docstring).

    `examples_per_step` turns steps into images per second; `logs_of(logs, k)` and `members`
    pick each member's entries of the logs (a packed sweep has one member per copy).
    `stream` is where the lines go (stdout by default).
    """

    def __init__(self, epochs, steps_per_epoch, examples_per_step, verbose=1, members=1,
                 logs_of=None, stream=None, redraw_seconds=0.5):
        super().__init__()
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.examples_per_step = examples_per_step
        self.members = members
        self.logs_of = logs_of or (lambda logs, index: logs)
        self.stream = stream or sys.stdout
        self.live = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self.redraw_seconds = redraw_seconds
        self._epoch = 0
        self._started = self._drawn = 0.0
        self._width = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._started = time.perf_counter()
        self._drawn = 0.0

    def tick(self, step):
        """Step `step` (0-based) of the epoch was dispatched; redraws when it is time."""
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._drawn < self.redraw_seconds:
            return
        self._drawn = now
        done = step + 1
        elapsed = now - self._started
        rate = done * self.examples_per_step / elapsed if elapsed > 0 else 0.0
        left = (self.steps_per_epoch - done) * elapsed / done
        filled = int(20 * done / self.steps_per_epoch)
        bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (20 - filled)
        self._write(f"\r{self._prefix()}  [{bar}] {done}/{self.steps_per_epoch}  "
                    f"{rate:,.0f} img/s  ETA {_duration(left)}", newline=False)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        rate = self.steps_per_epoch * self.examples_per_step / seconds if seconds > 0 else 0.0
        logs = logs or {}
        summary = epoch_summary([self.logs_of(logs, index) for index in range(self.members)])
        copies = f" over {self.members} copies" if self.members > 1 else ""
        self._write(f"\r{self._prefix()}  {self.steps_per_epoch} steps  {seconds:.1f} s  "
                    f"{rate:,.0f} img/s  {summary}{copies}", newline=True)

    def _prefix(self):
        return f"epoch {self._epoch + 1}/{self.epochs}"

    def _write(self, text, newline):
        # Pads over the longer line drawn before it, so no characters of it are left behind.
        visible = len(text.lstrip("\r"))
        padding = " " * max(self._width - visible, 0)
        self._width = 0 if newline else visible
        if not self.live:
            text = text.lstrip("\r")
            padding = ""
        self.stream.write(text + padding + ("\n" if newline else ""))
        self.stream.flush()
