"""Every flagfile in runs/ parses, names a valid dataset and model, and trains one step."""

import dataclasses
import os
import pathlib

import keras
import pytest
from absl import flags

from tc.runner import config as config_lib
from tc import data, models, run_files
from tc.runner import assembly, packing, search
from tests.support import model_group

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The GPU campaigns' folders, whose flagfiles are trained on a GPU, never here.
CAMPAIGNS = ("fashion_mnist", "confirmatory")
# The flagfiles of runs (tc.train, tc.tune); runs/report.cfg is the report's.
FLAGFILES = sorted(path for path in (ROOT / "runs").rglob("*.cfg")
                   if path.read_text().startswith(("# python -m tc.train", "# python -m tc.tune")))
# Full-scale files that take the same path through the code share one trained step: the same
# model and options, input shape, loss, optimizer, beta schedule, tracked layers, probe and
# readout scaling (cifar10, cifar100 and svhn grids of one network differ only in data that
# tfds.testing.mock_data makes up). Such files run on one pytest worker (`xdist_group`), which
# trains the step once. Under JAX, where they only build their network, the files of one network
# run on one worker instead, which compiles its initializers once.
ONE_STEP_RESULTS = {}


def parse(flagfile):
    """(RunConfig, SearchConfig or None, the entry point named on the file's first line)."""
    values = flags.FlagValues()
    config_lib.define_flags(values)
    search.define_flags(values)
    values(["tc", f"--flagfile={flagfile}"])
    entry_point = flagfile.read_text().splitlines()[0].split()[3]  # "# python -m tc.xxx ..."
    run_config = config_lib.from_flags(values)
    search_config = search.from_flags(values) if entry_point == "tc.tune" else None
    return run_config, search_config, entry_point


def test_there_is_a_flagfile_per_experiment():
    names = {path.relative_to(ROOT / "runs").as_posix() for path in FLAGFILES}
    assert {"paper1/wrn_cifar10_beta_grid.cfg", "paper1/resnet50_imagenet_beta_grid.cfg",
            "paper1/lstm_imdb_beta_grid.cfg", "paper1/wrn_cifar10_logit_norm_grid.cfg",
            "paper2/resnet18_cifar10_warmup.cfg", "paper2/vgg16_svhn_decay_grid.cfg",
            "paper3/vit_cifar10_temperature_grid.cfg", "cpu/paper1_digits_beta_grid.cfg",
            "cpu/paper2_digits_decay_grid.cfg",
            "cpu/paper3_synthetic_temperature_grid.cfg"} <= names
    readme = (ROOT / "runs" / "README.md").read_text()
    for name in names:
        assert name in readme, f"runs/README.md does not list {name}"


def test_every_flagfile_records_the_study_the_analysis_files_it_under():
    from tc.analysis import studies

    for path in FLAGFILES:
        run_config, _, _ = parse(path)
        assert run_config.study in studies.STUDIES, path


def _input_shape(run_config):
    from tc.data import tfds_source

    if run_config.dataset in ("fashion_mnist", "mnist"):
        return (28, 28, 1)
    return tfds_source.TABLES[run_config.dataset].input_shape


def one_step_config(run_config):
    """The file's run cut to one step of batch 2 through its data pipeline (tfds, mocked), loss,
    optimizer, beta schedule, logit-norm scaling and probe. An image network is replaced by a
    small stand-in with the `features` and `logits` layers every model has; a packed grid
    trains its first copy."""
    if run_config.is_packed:
        run_config = packing.copy_configs(run_config)[0]
    stand_in = {} if len(_input_shape(run_config)) == 1 else dict(  # token sequences: their own
        model="cnn", model_options="widths=(8,);dense_units=16",
        track_rank_layers=",".join(name for name in run_config.rank_layers
                                   if name in ("features", "logits")),
        probe_layer="features")
    return dataclasses.replace(
        run_config, epochs=1, batch_size=2, eval_batch_size=2, validation_size=2,
        rank_probe_size=2, output_dir="", tensorboard=False, save_predictions=False, verbose=0,
        study="", **stand_in)


def one_step_key(run_config):
    return (run_config.model_name, run_config.model_options, _input_shape(run_config),
            run_config.loss, run_config.optimizer, run_config.beta_schedule,
            run_config.track_rank_layers, run_config.probe_dataset,
            bool(run_config.init_logit_norm or run_config.init_logit_norms))


def _with_group(flagfile):
    run_config, _, _ = parse(flagfile)
    full_scale = run_config.dataset not in data.BUNDLED
    if flagfile.parent.name in CAMPAIGNS or (
            full_scale and keras.backend.backend() != "tensorflow"):
        mark = model_group(run_config.model_name)  # files that only build their network
    elif full_scale:
        mark = pytest.mark.xdist_group(repr(one_step_key(one_step_config(run_config))))
    else:
        mark = pytest.mark.xdist_group(flagfile.name)
    return pytest.param(flagfile, marks=mark,
                        id=flagfile.relative_to(ROOT / "runs").as_posix())


@pytest.mark.parametrize("flagfile", [_with_group(path) for path in FLAGFILES])
def test_flagfile_parses_and_trains_one_step(flagfile, tmp_path):
    run_config, search_config, entry_point = parse(flagfile)
    assert entry_point in ("tc.train", "tc.tune")
    assert (search_config is not None) == (entry_point == "tc.tune")
    assert run_config.dataset in data.names()
    if flagfile.parent.name in CAMPAIGNS:
        # The GPU campaigns' programs (runs/<campaign>/PLAN.md): each trains there, as
        # runs/results/<campaign>/LOG.md records; here, their copies and model check out.
        # The first line gives each program its --output_dir (the copies' folders go under it).
        if run_config.is_packed:
            packing.check(dataclasses.replace(run_config, output_dir=str(tmp_path)))
            assert len(packing.copy_settings(run_config)) >= 2
        assert flagfile.parent.name != "fashion_mnist" or run_config.is_packed
        model = models.build(run_config.model_name, (28, 28, 1), 10,
                             **run_config.parsed_model_options)
        assert model.get_layer("features") is not None
        return
    if run_config.dataset in data.BUNDLED:  # the CPU versions: real data, one short epoch
        results = assembly.run(dataclasses.replace(
            run_config, epochs=1, output_dir=str(tmp_path / "run"), tensorboard=False,
            verbose=0))
        assert all(result["status"] == "completed" and result["epochs_completed"] == 1
                   for result in results)
        return
    # The full-scale model builds with the file's options and has every layer the file names;
    # its training step is test_models's (a CPU takes minutes over these networks' steps).
    model = models.build(run_config.model_name, _input_shape(run_config), 10,
                         **run_config.parsed_model_options)
    for name in ("features", *run_config.rank_layers, *run_config.probe_layers):
        assert model.get_layer(name) is not None, name
    if keras.backend.backend() != "tensorflow":
        return
    tfds = pytest.importorskip("tensorflow_datasets")
    if run_config.is_packed:
        # The whole grid is checked and its first copy trains the step (packed training itself:
        # tests/runner/test_packing.py).
        packing.check(dataclasses.replace(run_config, output_dir=str(tmp_path)))
    one_step = dataclasses.replace(one_step_config(run_config), data_dir=str(tmp_path / "data"))
    key = one_step_key(one_step)
    if key not in ONE_STEP_RESULTS:
        with tfds.testing.mock_data(num_examples=4):
            ONE_STEP_RESULTS[key] = assembly.run(
                dataclasses.replace(one_step, output_dir=str(tmp_path / "run")))
    for result in ONE_STEP_RESULTS[key]:
        assert result["status"] == "completed" and result["epochs_completed"] == 1


# Reads the committed runs/results tree (not in the Bazel library tests' runfiles).
def test_every_result_the_runner_committed_follows_the_schema():
    import glob

    paths = glob.glob(os.path.join(os.path.dirname(__file__), "..", "runs", "results", "**",
                                   "result.json"), recursive=True)
    assert len(paths) > 500
    for path in paths:
        result = run_files.read_result(path)
        assert result["status"] in run_files.STATUSES, path
