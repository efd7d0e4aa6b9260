"""The dataset registry's entries (`tc.data.REGISTRY`) against what loading each one does: the
datasets that need no TensorFlow load with TensorFlow blocked, and each one's default model
builds on its inputs and classes."""

import json

import pytest

from tests.support import run_python
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
               "synthetic_images": {"samples": 64, "image_size": 8}}
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
    assert shapes["fashion_mnist"][:2] == [[28, 28, 1], 10]
    assert shapes["digits"][:2] == [[8, 8, 1], 10]
