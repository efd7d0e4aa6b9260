"""The run configuration: one frozen dataclass whose fields are the `tc.train` flags, one to one.

`RunConfig.validate()` checks every field before anything touches the disk, with messages that
name the flag and its valid values. `to_flagfile()` writes the flagfile that reproduces a run,
and `define_flags()` / `from_flags()` connect the dataclass to absl.
"""

import ast
import dataclasses
import math

import keras

from tc import data, losses, models, run_files, schedules
from tc.data import far_ood
from tc.runner import run_dir as run_dir_lib

LOSSES = losses.names()
BETA_SCHEDULES = ("constant", "log_linear", "cosine")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
LR_SCHEDULES = schedules.LR_DECAYS
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("off", "bfloat16", "float16")
# Flags that change how a run is shown or started, never its results: left out of flags.txt.
NOT_RECORDED = ("overwrite", "verbose", "max_copies_per_program", "coordinator_address",
                "num_processes", "process_id")
# Flags newer than the first runs: written only when they differ from their default, so older
# run directories still match.
RECORDED_IF_SET = ("betas", "study", "probe_dataset_options", "learning_rates", "seeds",
                   "init_logit_norms", "readout_init_scales", "grid", "lr_scaling",
                   "shuffle_seed", "data_order", "track_example_learning", "train_eval_size",
                   "far_ood")
GRIDS = ("product", "zip")
DATA_ORDERS = ("shared", "per_copy")
LR_SCALINGS = ("none", "inverse_beta", "inverse_beta_squared")
# --lr_scaling=<name> trains at rate / beta^power.
LR_SCALING_POWERS = {"none": 0, "inverse_beta": 1, "inverse_beta_squared": 2}


# The valid range of each integer flag. The upper bounds refuse what no run could finish (a
# million epochs) or hold (a batch of ten million); seeds are what NumPy and Keras accept.
MAX_SEED = 2**32 - 1
INTEGER_RANGES = {
    "epochs": (1, 10**6), "batch_size": (1, 10**6), "eval_batch_size": (1, 10**6),
    "beta_warmup": (1, 10**9), "rank_probe_size": (2, 10**6), "probe_size": (2, 10**7),
    "lr_warmup_epochs": (0, 10**6), "validation_size": (-1, 10**9),
    "max_copies_per_program": (0, 10**4), "track_example_learning": (0, 10**7),
    "train_eval_size": (0, 10**7), "steps_per_call": (1, 10**4),
    "seed": (0, MAX_SEED), "shuffle_seed": (-1, MAX_SEED),
}


def scaled_learning_rate(rate, beta, lr_scaling):
    """The rate a run trains at under `--lr_scaling`: rate / beta^2, rate / beta, or rate."""
    return rate / beta ** LR_SCALING_POWERS[lr_scaling]


def _names(text):
    """The names of a comma-separated flag value, e.g. 'dense0, features' ('' = none).

    Raises ValueError for an empty item (`'dense0,,features'`), as `_numbers` does.
    """
    if not text.strip():
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"{text!r} has an empty item")
    return names


def _field(default, help_text, choices=None):
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (see each field's help)."""

    # Data and model.
    dataset: str = _field("digits", f"Dataset name: one of {', '.join(data.names())}, or "
                                    "tfds:<name> for any TFDS image-classification dataset.")
    data_dir: str = _field("", "Data directory: a folder of IDX files (fashion_mnist, mnist) or a "
                               "TFDS data directory ('' = the packaged folder, else "
                               "$TFDS_DATA_DIR or ~/tensorflow_datasets).")
    dataset_options: str = _field("", "Dataset options as key=value pairs separated by ';', "
                                      "e.g. 'samples=2000;image_size=64' (see tc.data).")
    validation_size: int = _field(-1, "Training examples held out for validation (-1 = the "
                                      "dataset's default).")
    model: str = _field("", "Model name ('' = the papers' model for the dataset).",
                        ("",) + models.names())
    model_options: str = _field("", "Model options as key=value pairs separated by ';', e.g. "
                                    "'depth=28;width=10'.")
    # Loss.
    loss: str = _field("temperature", losses.describe() + ".", LOSSES)
    beta: float = _field(1.0, "Inverse temperature (temperature) or gradient-decay factor; > 0. "
                              "With a warm-up schedule, the final value.")
    betas: str = _field("", "Packed sweep: comma-separated betas, e.g. 0.01,0.1,1. Trains one copy "
                        "of the model per setting in one compiled program, each copy writing "
                        "its own run directory (--beta is then ignored). '' = --beta.")
    learning_rates: str = _field("", "Packed sweep: comma-separated peak learning rates, one "
                                     "axis of the sweep (see --grid); '' = --learning_rate.")
    seeds: str = _field("", "Packed sweep: comma-separated seeds of the copies' initialization "
                            "(the data order stays --shuffle_seed's); '' = --seed.")
    init_logit_norms: str = _field("", "Packed sweep: comma-separated ||beta z0|| targets (see "
                                       "--init_logit_norm); '' = --init_logit_norm.")
    readout_init_scales: str = _field("", "Packed sweep: comma-separated readout_init_scale "
                                          "model options; '' = the model's own.")
    grid: str = _field("product", "How the packed sweep's lists combine: product (every "
                                  "combination) or zip (the i-th of each list; a list of one is "
                                  "repeated).", GRIDS)
    data_order: str = _field("shared", "Packed sweep: shared (every copy sees --shuffle_seed's "
                                       "batches: common random numbers) or per_copy (each copy "
                                       "its own seed's order and augmentation, as its separate "
                                       "run; copies of one seed share a program, so a beta x "
                                       "seed grid is one program per seed).", DATA_ORDERS)
    beta_schedule: str = _field("constant", "How beta moves: constant, or a log_linear / cosine "
                                            "warm-up from --beta_start to --beta.", BETA_SCHEDULES)
    beta_start: float = _field(0.1, "Warm-up start value of beta; > 0.")
    beta_warmup: int = _field(5, "Warm-up length, in --beta_warmup_unit.")
    beta_warmup_unit: str = _field("epoch", "Unit of --beta_warmup.", ("epoch", "step"))
    init_logit_norm: str = _field("", "Rescale the readout so the mean ||beta z0|| over a batch "
                                      "is this ('' = leave the initialization alone).")
    label_smoothing: float = _field(0.0, "Label smoothing in [0, 1).")
    # Optimization.
    optimizer: str = _field("momentum", "Optimizer (momentum = SGD with --momentum).", OPTIMIZERS)
    learning_rate: float = _field(0.05, "Peak learning rate; > 0 (eta_tilde with --lr_scaling).")
    lr_scaling: str = _field("none", "inverse_beta_squared: train at --learning_rate / beta^2 "
                                     "(paper 1's eta_tilde; beta = the final beta); "
                                     "inverse_beta: at --learning_rate / beta.", LR_SCALINGS)
    momentum: float = _field(0.9, "Momentum of the momentum optimizer, in [0, 1).")
    lr_schedule: str = _field("constant", "Learning-rate decay after the warm-up.", LR_SCHEDULES)
    lr_warmup_epochs: int = _field(0, "Linear learning-rate warm-up, in epochs.")
    lr_decay_epochs: str = _field("", "Step schedule: epochs at which the rate is multiplied by "
                                      "--lr_decay_factor, e.g. '60,120,160' ('' = 50%, 75%).")
    lr_decay_factor: float = _field(0.1, "Step schedule: the multiplier, in (0, 1].")
    weight_decay: float = _field(0.0, "Weight decay lambda (L2 on kernels; decoupled for adamw).")
    batch_size: int = _field(64, "Global batch size, split across replicas.")
    eval_batch_size: int = _field(512, "Evaluation batch size.")
    epochs: int = _field(30, "Training epochs; >= 1.")
    steps_per_call: int = _field(1, "JAX, one device: training steps fused into one compiled "
                                    "call (a scan over that many batches), so the host "
                                    "dispatches the step's state once per call rather than "
                                    "once per step; checkpoints, metrics and the divergence "
                                    "check stay at epoch ends. 1 = one step per call.")
    # Run control.
    seed: int = _field(0, "Random seed (initialization, data order, augmentation).")
    shuffle_seed: int = _field(-1, "Seed of the data order and augmentation (-1 = --seed). A "
                                   "packed copy records the sweep's, so its flags.txt reruns it "
                                   "alone exactly.")
    output_dir: str = _field("", "Run directory ('' = tc_runs/<dataset>_<model>_<loss>_beta<beta>"
                                 "_seed<seed>).")
    overwrite: bool = _field(False, "Replace a run directory that holds a run with other flags.")
    max_copies_per_program: int = _field(0, "Packed sweep: at most this many copies per "
                                            "compiled program; a larger sweep runs as several "
                                            "programs one after another, with the same numbers "
                                            "(0 = as many as fit in 80% of the accelerator's "
                                            "memory, estimated from one copy; all on a CPU).")
    strategy: str = _field("auto", "Distribution strategy.", STRATEGIES)
    tpu: str = _field("", "TPU address for --strategy=tpu ('' = the local TPU).")
    coordinator_address: str = _field("", "JAX --strategy=multi_worker: host:port of process 0, "
                                          "the same for every process ('' = "
                                          "KERAS_DISTRIBUTION_JOB_ADDRESSES, or what JAX detects "
                                          "on SLURM, Open MPI, Kubernetes or a TPU pod).")
    num_processes: int = _field(0, "JAX --strategy=multi_worker: how many processes take part "
                                   "(0 = KERAS_DISTRIBUTION_NUM_PROCESSES, or detected).")
    process_id: int = _field(-1, "JAX --strategy=multi_worker: this process's index in "
                                 "[0, --num_processes); process 0 writes the run directory "
                                 "(-1 = KERAS_DISTRIBUTION_PROCESS_ID, or detected).")
    mixed_precision: str = _field("off", "Mixed precision policy.", PRECISIONS)
    track_rank_layers: str = _field("features", "Comma-separated layers whose numerical and "
                                                "effective rank are recorded each epoch.")
    rank_probe_size: int = _field(512, "Test examples the ranks are measured on.")
    probe_dataset: str = _field("", "After training, fit a logistic-regression probe on the "
                                    "frozen --probe_layer activations of this dataset and record "
                                    "its test accuracy (paper 3's transfer probe; '' = none).")
    probe_dataset_options: str = _field("", "Dataset options of --probe_dataset, e.g. "
                                            "'classes=5,6,7,8,9' for held-out classes.")
    probe_layer: str = _field("features", "Comma-separated layers whose frozen activations "
                                          "the linear probe reads, each probed alone; the "
                                          "first also gives the OOD feature score.")
    probe_size: int = _field(5000, "Training examples of --probe_dataset the probe is fit on.")
    far_ood: str = _field("", "After training, score OOD detection of the test inputs against "
                              "these comma-separated far-OOD sets, made at the model's input "
                              "shape: digits (scikit-learn's, resized), uniform_noise ('' = "
                              "none).")
    track_example_learning: int = _field(0, "Paper 2's curriculum: for this many training "
                                            "examples (the first of the training split), "
                                            "record each epoch's margin and loss, and the epoch "
                                            "from which each stays correctly classified, in "
                                            "example_learning.npz (0 = off).")
    train_eval_size: int = _field(0, "Training examples (the first of the training split, "
                                     "without augmentation) evaluated at each epoch end as "
                                     "train_eval/: the fit that a fit filter judges, not the "
                                     "running mean over augmented batches that train/ is "
                                     "(0 = off).")
    save_predictions: bool = _field(True, "Write predictions.npz: the validation and test logits "
                                          "whose softmax the metrics scored, and the labels.")
    tensorboard: bool = _field(True, "Write metrics.csv's columns as TensorBoard scalars "
                               "(needs the tensorboard package).")
    verbose: int = _field(1, "0 silent, 1 a live progress line and one line per epoch, 2 one "
                          "line per epoch.")
    study: str = _field("", "The study this run belongs to, recorded for the analysis (e.g. "
                            "p1_beta_sweep; see tc/analysis/studies.py); '' = decided there from "
                            "the flags.")

    # --- derived values -----------------------------------------------------------------------

    @property
    def model_name(self):
        return self.model or models.default_model(self.dataset)

    @property
    def parsed_dataset_options(self):
        return parse_options(self.dataset_options, "dataset_options")

    @property
    def parsed_model_options(self):
        return parse_options(self.model_options, "model_options")

    @property
    def initial_logit_norm(self):
        return float(self.init_logit_norm) if self.init_logit_norm.strip() else None

    @property
    def rank_layers(self):
        return _names(self.track_rank_layers)

    @property
    def probe_layers(self):
        return _names(self.probe_layer)

    @property
    def far_ood_sets(self):
        return _names(self.far_ood)

    @property
    def decay_epochs(self):
        if self.lr_decay_epochs.strip():
            return _numbers(self.lr_decay_epochs, int)
        return (self.epochs // 2, (3 * self.epochs) // 4)

    @property
    def packed_betas(self):
        """The betas of `--betas`, as floats (empty for a single run)."""
        return _numbers(self.betas, float)

    @property
    def sweep_axes(self):
        """`{setting: values}` of every packed-sweep list that is set, in a fixed order."""
        axes = {"beta": self.packed_betas, "learning_rate": _numbers(self.learning_rates, float),
                "seed": _numbers(self.seeds, int),
                "init_logit_norm": _numbers(self.init_logit_norms, float),
                "readout_init_scale": _numbers(self.readout_init_scales, float)}
        return {name: values for name, values in axes.items() if values}

    @property
    def is_packed(self):
        return bool(self.sweep_axes)

    @property
    def data_order_seed(self):
        """The seed of the data order and augmentation: --shuffle_seed, or --seed."""
        return self.seed if self.shuffle_seed < 0 else self.shuffle_seed

    @property
    def effective_learning_rate(self):
        """The peak rate trained at: --learning_rate, divided by beta^2 or beta (--lr_scaling)."""
        return scaled_learning_rate(self.learning_rate, self.beta, self.lr_scaling)

    @property
    def run_name(self):
        return f"{self.dataset}_{self.model_name}_{self.loss}_beta{self.beta:g}_seed{self.seed}"

    @property
    def run_dir(self):
        return self.output_dir or f"tc_runs/{self.run_name}"

    def validate(self):
        """Raises ValueError naming the flag and the valid values for the first bad field."""
        # The datasets first: the default model and run directory are named after the dataset.
        self._validate_names()
        self._validate_processes()
        self._validate_numbers()
        self._validate_sweep_lists()
        self._validate_layers_and_outputs()
        self._validate_options()
        return self

    def _validate_names(self):
        for flag in ("dataset", "probe_dataset"):
            name = getattr(self, flag)
            if name or flag == "dataset":
                try:
                    data.check_name(name)
                except ValueError as error:
                    raise ValueError(f"--{flag}={name!r}: {error}") from None
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            value = getattr(self, field.name)
            if choices is not None and value not in choices:
                raise ValueError(f"--{field.name}={value!r} is not valid; valid values: "
                                 f"{', '.join(repr(c) for c in choices)}.")

    def _validate_numbers(self):
        for name in ("beta", "beta_start", "learning_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name}={value!r} is not valid: it must be positive and "
                                 "finite (0 < value < inf).")
        for name, (minimum, maximum) in INTEGER_RANGES.items():
            value = getattr(self, name)
            if not minimum <= value <= maximum:
                raise ValueError(f"--{name}={value!r} is not valid: it must be an integer in "
                                 f"[{minimum}, {maximum:,}].")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label_smoothing={self.label_smoothing!r} must be in [0, 1).")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"--momentum={self.momentum!r} must be in [0, 1).")
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ValueError(f"--lr_decay_factor={self.lr_decay_factor!r} must be in (0, 1].")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"--weight_decay={self.weight_decay!r} must be >= 0 and finite.")
        try:
            norm = self.initial_logit_norm
        except ValueError:
            raise ValueError(f"--init_logit_norm={self.init_logit_norm!r} must be empty or a "
                             "positive number.") from None
        if norm is not None and not (math.isfinite(norm) and norm > 0):
            raise ValueError(f"--init_logit_norm={self.init_logit_norm!r} must be empty or a "
                             "positive, finite number.")
        try:
            decay_epochs = self.decay_epochs
        except ValueError:
            raise ValueError(f"--lr_decay_epochs={self.lr_decay_epochs!r} must be a comma-"
                             "separated list of epochs.") from None
        if any(e < 1 for e in decay_epochs) and self.lr_schedule == "step":
            raise ValueError(f"--lr_decay_epochs={self.lr_decay_epochs!r}: epochs must be >= 1.")

    def _validate_layers_and_outputs(self):
        for flag in ("track_rank_layers", "probe_layer"):
            try:
                _names(getattr(self, flag))
            except ValueError:
                raise ValueError(f"--{flag}={getattr(self, flag)!r} must be comma-separated "
                                 "layer names with no empty item, e.g. 'dense0,features'."
                                 ) from None
        try:
            far_ood.check_names(_names(self.far_ood))
        except ValueError as error:
            raise ValueError(f"--far_ood={self.far_ood!r}: {error}") from None
        run_dir_lib.check_output_directory(self.run_dir)
        if self.study and not self.study.replace("_", "").isalnum():
            raise ValueError(f"--study={self.study!r} must be a name of letters, digits and "
                             "underscores, e.g. p1_beta_sweep.")

    def _validate_options(self):
        if self.steps_per_call > 1:
            if keras.backend.backend() != "jax":
                raise ValueError(f"--steps_per_call={self.steps_per_call} fuses steps on the JAX "
                                 f"backend only (this is {keras.backend.backend()}); use 1, or "
                                 "KERAS_BACKEND=jax.")
            if self.beta_schedule != "constant" and self.beta_warmup_unit == "step":
                raise ValueError(f"--steps_per_call={self.steps_per_call} with "
                                 "--beta_warmup_unit=step: beta is set from the host between "
                                 "steps; warm up in epochs, or use --steps_per_call=1.")
        dataset_options = self.parsed_dataset_options
        reserved = sorted(set(dataset_options) & {"validation_size", "data_dir"})
        if reserved:
            raise ValueError(f"--dataset_options: set {reserved} with their own flags "
                             "(--validation_size, --data_dir).")
        takes = data.options(self.dataset)
        if self.validation_size >= 0 and "validation_size" not in takes:
            held_out = [o for o in takes if o.startswith("validation")]
            raise ValueError(f"--validation_size={self.validation_size}: dataset "
                             f"{self.dataset!r} has no held-out training examples to size"
                             + (f"; its validation split is --dataset_options={held_out[0]}=N."
                                if held_out else "."))
        parse_options(self.probe_dataset_options, "probe_dataset_options")
        options = self.parsed_model_options
        if "weight_decay" in options:
            raise ValueError("--model_options: set weight decay with --weight_decay, which also "
                             "knows the optimizer (decoupled for adamw).")
        valid = [o for o in models.options(self.model_name) if o != "weight_decay"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"--model_options: model {self.model_name!r} takes no option(s) "
                             f"{unknown}; valid options: {', '.join(valid)}.")

    def _validate_sweep_lists(self):
        lists = (("betas", float, "positive", lambda v: math.isfinite(v) and v > 0),
                 ("learning_rates", float, "positive", lambda v: math.isfinite(v) and v > 0),
                 ("seeds", int, f"integers in [0, {MAX_SEED}]", lambda v: 0 <= v <= MAX_SEED),
                 ("init_logit_norms", float, "positive", lambda v: math.isfinite(v) and v > 0),
                 ("readout_init_scales", float, ">= 0", lambda v: math.isfinite(v) and v >= 0))
        for flag, kind, rule, valid in lists:
            text = getattr(self, flag)
            try:
                values = _numbers(text, kind)
            except ValueError as error:
                empty = " with no empty item" if "empty item" in str(error) else ""
                raise ValueError(f"--{flag}={text!r} must be a comma-separated list of numbers "
                                 f"({rule}){empty}, e.g. "
                                 f"{'0,1,2' if kind is int else '0.01,0.1,1'}.") from None
            bad = [v for v in values if not valid(v)]
            if bad:
                raise ValueError(f"--{flag}={text!r}: {bad} not valid; every value must be "
                                 f"{rule} and finite.")
            if self.grid == "product" and len(set(values)) != len(values):
                raise ValueError(f"--{flag}={text!r} repeats a value; each copy needs its own "
                                 "setting (its run directory is named after it).")

    def _validate_processes(self):
        process_flags = [f"--{name}" for name, unset in (
            ("coordinator_address", ""), ("num_processes", 0), ("process_id", -1))
            if getattr(self, name) != unset]
        if process_flags and self.strategy != "multi_worker":
            raise ValueError(f"{', '.join(process_flags)} only apply to --strategy=multi_worker "
                             f"(JAX); --strategy={self.strategy}.")
        if self.num_processes < 0:
            raise ValueError(f"--num_processes={self.num_processes} is not valid: it must be "
                             ">= 1 (0 = from the environment).")
        if self.process_id < -1 or (self.num_processes and self.process_id >= self.num_processes):
            bound = self.num_processes - 1 if self.num_processes else "--num_processes - 1"
            raise ValueError(f"--process_id={self.process_id} is not valid: it must be in "
                             f"[0, {bound}] (-1 = from the environment).")

    def to_flagfile(self):
        """The absl flagfile that reproduces this run."""
        lines = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in NOT_RECORDED or (field.name in RECORDED_IF_SET
                                              and value == field.default):
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else value
            lines.append(f"--{field.name}={text}")
        return "\n".join(lines) + "\n"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_flagfile(cls, text, **overrides):
        """The RunConfig of a flags.txt written by `to_flagfile` (plus `overrides`), validated.

        Lines starting with `#` are comments, as in absl flagfiles.
        """
        fields = {field.name: field for field in dataclasses.fields(cls)}
        values = {}
        for name, value in run_files.flag_values(text).items():
            if name not in fields:
                raise ValueError(f"'--{name}={value}' is not a flag of tc.train (--name=value).")
            default = fields[name].default
            values[name] = (run_files.parse_bool(value) if isinstance(default, bool)
                            else type(default)(value))
        return cls(**{**values, **overrides}).validate()


def _numbers(text, kind):
    """`'0.1, 1,10'` -> `(0.1, 1.0, 10.0)` with `kind=float`; `''` -> `()`.

    Raises ValueError for an empty item (`'1,,2'`, `'1,'`): a list that says two values where
    three were typed is a typo, not a sweep of two.
    """
    if not text.strip():
        return ()
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(f"{text!r} has an empty item")
    return tuple(kind(item) for item in items)


def parse_options(text, flag_name):
    """`'a=1;b=relu;c=(1, 2)'` -> `{'a': 1, 'b': 'relu', 'c': (1, 2)}` (literals where they parse)."""
    options = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--{flag_name}: {item!r} is not a key=value pair.")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    return options


def define_flag(name, default, help_text, choices=None, flag_values=None,
                module_name=__name__):
    """Defines one absl flag whose type follows its default (an enum when `choices` are given),
    listed in `--help` under `module_name`."""
    from absl import flags

    where = dict(flag_values=flags.FLAGS if flag_values is None else flag_values,
                 module_name=module_name)
    if choices is not None:
        flags.DEFINE_enum(name, default, list(choices), help_text, **where)
    elif isinstance(default, bool):
        flags.DEFINE_bool(name, default, help_text, **where)
    elif isinstance(default, int):
        flags.DEFINE_integer(name, default, help_text, **where)
    elif isinstance(default, float):
        flags.DEFINE(_exact_float_parser(), name, default, help_text,
                     serializer=flags.ArgumentSerializer(), **where)
    else:
        flags.DEFINE_string(name, default, help_text, **where)


def _exact_float_parser():
    """An absl float parser (absl is imported only where flags are defined)."""
    from absl import flags

    class ExactFloatParser(flags.FloatParser):
        """absl's float parser, refusing a literal that float64 cannot hold: `--beta=1e-400`
        would otherwise run, or be refused, as `--beta=0.0`."""

        def parse(self, argument):
            value = super().parse(argument)
            if isinstance(argument, str):
                mantissa = argument.strip().lower().split("e")[0]
                if value == 0.0 and any(digit in mantissa for digit in "123456789"):
                    raise ValueError(f"{argument} underflows to 0 in float64 (the smallest "
                                     "positive value is about 4.9e-324)")
                if math.isinf(value) and "inf" not in argument.lower():
                    raise ValueError(f"{argument} overflows to infinity in float64 (the largest "
                                     "value is about 1.8e308)")
            return value

    return ExactFloatParser()


# `--help` lists the run flags in these groups (tc.runner.command_line); each field is in one.
HELP_GROUPS = (
    ("data and model", ("dataset", "data_dir", "dataset_options", "validation_size", "model",
                        "model_options", "init_logit_norm")),
    ("loss", ("loss", "beta", "beta_schedule", "beta_start", "beta_warmup", "beta_warmup_unit",
              "label_smoothing")),
    ("optimization", ("optimizer", "learning_rate", "lr_scaling", "momentum", "lr_schedule",
                      "lr_warmup_epochs", "lr_decay_epochs", "lr_decay_factor", "weight_decay",
                      "batch_size", "eval_batch_size", "epochs", "steps_per_call", "seed",
                      "shuffle_seed")),
    ("packed sweep: one program trains a copy per setting", (
        "betas", "learning_rates", "seeds", "init_logit_norms", "readout_init_scales", "grid",
        "data_order", "max_copies_per_program")),
    ("run control and measurements", (
        "output_dir", "overwrite", "strategy", "tpu", "coordinator_address", "num_processes",
        "process_id", "mixed_precision", "verbose",
        "tensorboard", "save_predictions", "track_rank_layers", "rank_probe_size",
        "probe_dataset", "probe_dataset_options", "probe_layer", "probe_size", "far_ood",
        "track_example_learning", "train_eval_size", "study")),
)


def define_flags(flag_values=None):
    """Defines one absl flag per RunConfig field, with its default, help and choices."""
    for field in dataclasses.fields(RunConfig):
        define_flag(field.name, field.default, field.metadata["help"], field.metadata["choices"],
                    flag_values)


def from_flags(flag_values=None, **overrides):
    """The validated RunConfig of parsed absl flags (plus `overrides`)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(RunConfig)}
    values.update(overrides)
    return RunConfig(**values).validate()
