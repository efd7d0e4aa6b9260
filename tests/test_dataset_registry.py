"""The dataset registry's entries (`tc.data.REGISTRY`) against what loading each one does: the
datasets that need no TensorFlow load with TensorFlow blocked, and each one's default model
builds on its inputs and classes."""

import json
import os
import re

import numpy as np
import pytest

from tests.support import ROOT, run_python
from tests.test_mnist_like import tiny_idx_folder


@pytest.mark.backend_independent
def test_every_entry_names_a_model_and_every_tfds_table_is_registered_as_needing_tensorflow():
    from tc import data, models
    from tc.data import tfds_source

    for name, entry in data.REGISTRY.items():
        assert entry.default_model in models.names(), name
        assert models.default_model(name) == entry.default_model
        assert not (entry.bundled and entry.needs_tensorflow), name
    for name in tfds_source.TABLES:
        assert data.REGISTRY[name].needs_tensorflow, name
    assert data.BUNDLED == tuple(name for name, entry in data.REGISTRY.items() if entry.bundled)
    assert models.default_model("tfds:kmnist") == data.TFDS_DEFAULT_MODEL


def test_datasets_without_tensorflow_load_with_it_blocked_and_fit_their_default_model(tmp_path):
    from tc import data

    folder = tiny_idx_folder(tmp_path / "mnist", per_class=(12, 4), size=28)
    options = {"mnist": {"data_dir": str(folder), "validation_size": 20},
               "synthetic_images": {"samples": 64}}
    without = [name for name, entry in data.REGISTRY.items() if not entry.needs_tensorflow]
    assert {"digits", "fashion_mnist", "mnist", "synthetic_images"} <= set(without)
    completed = run_python(f"""
        import json
        from tc import data, models
        shapes = {{}}
        for name, options in [(name, {options!r}.get(name, {{}})) for name in {without!r}]:
            dataset = data.load(name, **options)
            model = models.build(models.default_model(name), dataset.input_shape,
                                 dataset.num_classes)
            shapes[name] = [list(dataset.input_shape), dataset.num_classes,
                            list(model.output.shape[1:])]
        print(json.dumps(shapes))
        """, backend="jax", block_tensorflow=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    shapes = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(shapes) == set(without)
    for name, (input_shape, classes, output_shape) in shapes.items():
        assert output_shape == [classes], name  # logits, one per class
        entry = data.REGISTRY[name]
        assert [input_shape, classes] == [list(entry.input_shape), entry.num_classes], name
    assert shapes["fashion_mnist"][:2] == [[28, 28, 1], 10]
    assert shapes["digits"][:2] == [[8, 8, 1], 10]


def _documented_facts(text, columns):
    """The classes and input of each name in the dataset table of `text` (markdown), read from
    the table's cells at `columns` (names, classes, input)."""
    facts = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`") or cells[0].startswith("`tfds:"):
            continue
        names, classes, shape = (cells[column] for column in columns)
        names = re.findall(r"`([a-z0-9_]+)`", names)
        classes = [int(count) for count in classes.split(", ")]
        shape = re.match(r"\(?([\dx, ]+?),?\)?(?: (?:token )?ids)?$", shape).group(1)
        for index, name in enumerate(names):
            facts[name] = (classes[min(index, len(classes) - 1)],
                           tuple(int(size) for size in re.split(r"[x,]", shape)))
    return facts


@pytest.mark.backend_independent
def test_the_documented_tables_state_each_entrys_classes_and_input():
    from tc import data

    registered = {name: (entry.num_classes, entry.input_shape)
                  for name, entry in data.REGISTRY.items()}
    assert _documented_facts(data.__doc__, columns=(0, 2, 3)) == registered
    with open(os.path.join(ROOT, "docs", "guides", "datasets.md")) as handle:
        assert _documented_facts(handle.read(), columns=(0, 1, 2)) == registered


# The runner's end-to-end contract, run for every registered dataset: a tiny `tc.train` run
# completes, writes a result.json of the schema, and its stored test predictions are the
# dataset's own test split (labels as an independent `data.load` gives them), scored as the
# result says. Image sets big enough to be slow on a CPU train a small CNN in place of their
# default model: what is under test is the dataset's way through the runner.
CONTRACT_RUN = '''
import contextlib, json, os
import numpy as np
from tc import data, run_files
from tc.runner import assembly, config as config_lib

checked = {{}}
for name, options, model, model_options in {cases!r}:
    mocked = contextlib.nullcontext()
    if data.REGISTRY[name].needs_tensorflow:
        import tensorflow_datasets as tfds
        mocked = tfds.testing.mock_data(num_examples=48)
    with mocked:
        output = os.path.join({root!r}, name)
        config = config_lib.RunConfig(
            dataset=name, dataset_options=";".join(f"{{k}}={{v}}" for k, v in options.items()),
            data_dir={data_dirs!r}.get(name, ""), model=model,
            validation_size=16 if "validation_size" in data.options(name) else -1,
            model_options=model_options, epochs=1, batch_size=16, tensorboard=False,
            verbose=0, rank_probe_size=16, track_rank_layers="", output_dir=output).validate()
        result, = assembly.run(config)
        stored = run_files.read_result(os.path.join(output, run_files.RESULT_FILE))
        run_files.check_result(stored)
        predictions = np.load(os.path.join(output, "predictions.npz"))
        load_options = {{"data_dir": {data_dirs!r}[name]}} if name in {data_dirs!r} else {{}}
        if "validation_size" in data.options(name):
            load_options["validation_size"] = 16
        loaded = data.load(name, **load_options, **options)
        if hasattr(loaded, "arrays"):
            _, test_labels = loaded.arrays("test")
        else:  # streamed (ImageNet): the test split's labels in file order
            from tc.data import tfds_source
            test_labels = np.array([label for _, label in
                                    tfds_source.tfds_numpy(loaded.source("test"))])
        logits = predictions["test_logits"]
        checked[name] = {{
            "status": stored["status"], "model": model or data.REGISTRY[name].default_model,
            "labels_match": bool(np.array_equal(predictions["test_labels"], test_labels)),
            "classes": [int(logits.shape[1]), int(loaded.num_classes)],
            "facts": [list(loaded.input_shape), int(loaded.num_classes)],
            "accuracy": [float(stored["final"]["test/accuracy"]),
                         float(np.mean(np.argmax(logits, axis=1) == test_labels))]}}
print(json.dumps(checked))
'''

SMALL_CNN = ("cnn", "widths=4,8;dense_units=8")
CONTRACT_CASES = {  # name: (dataset options, model ("" = its default), model options)
    "digits": ({}, "", ""), "synthetic": ({"samples": 96}, "", ""),
    "synthetic_shift": ({"samples": 96}, "", ""),
    "synthetic_images": ({"samples": 64}, *SMALL_CNN),
    "fashion_mnist": ({}, "", ""), "mnist": ({}, "", ""),
    "cifar10": ({}, *SMALL_CNN), "cifar100": ({}, *SMALL_CNN),
    "svhn_cropped": ({}, *SMALL_CNN), "imagenet2012": ({}, *SMALL_CNN),
    "imdb_reviews": ({"vocab_size": 64}, "lstm", "units=8;embedding_dim=8"),
}


def run_contract(tmp_path, names, **run_options):
    from tc import data

    # The IDX sets read a folder of tiny IDX files; the TFDS tables, mock data under one folder.
    folders = {name: str(tiny_idx_folder(tmp_path / name, per_class=(6, 3), size=28)
                         if name in ("fashion_mnist", "mnist") else tmp_path / "tfds")
               for name in names if "data_dir" in data.options(name)}
    cases = [(name, *CONTRACT_CASES[name]) for name in names]
    completed = run_python(CONTRACT_RUN.format(cases=cases, root=str(tmp_path / "runs"),
                                               data_dirs=folders),
                           backend="jax", timeout=600, **run_options)
    assert completed.returncode == 0, completed.stderr[-3000:]
    checked = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sorted(checked) == sorted(names)
    for name, row in checked.items():
        assert row["status"] == "completed", (name, row)
        assert row["labels_match"], name
        assert row["classes"][0] == row["classes"][1], (name, row)
        # The registry's facts, as loading with these (size-keeping) options gives them.
        assert row["facts"] == [list(data.REGISTRY[name].input_shape),
                                data.REGISTRY[name].num_classes], (name, row)
        np.testing.assert_allclose(row["accuracy"][0], row["accuracy"][1], atol=1e-6,
                                   err_msg=name)
    return checked


@pytest.mark.backend_independent  # its subprocess runs under JAX whatever the leg
def test_every_dataset_without_tensorflow_runs_through_the_runner_with_tensorflow_blocked(
        tmp_path):
    from tc import data

    names = [name for name, entry in data.REGISTRY.items() if not entry.needs_tensorflow]
    assert set(CONTRACT_CASES) == set(data.REGISTRY), "a registered dataset has no contract run"
    checked = run_contract(tmp_path, names, block_tensorflow=True)
    assert checked["fashion_mnist"]["model"] == "lenet"


@pytest.mark.backend_independent
@pytest.mark.tensorflow_leg  # TFDS under mock_data
def test_every_tfds_dataset_runs_through_the_runner_on_mock_data(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from tc import data

    run_contract(tmp_path, [name for name, entry in data.REGISTRY.items()
                            if entry.needs_tensorflow])
