"""The model zoo: shapes, parameter counts, one SGD step, options and errors."""

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tc import models
from tests.support import model_group

CANONICAL = {  # name: (input_shape, num_classes) the papers use
    "wrn": ((32, 32, 3), 10), "resnet18": ((32, 32, 3), 10), "resnet34": ((32, 32, 3), 100),
    "resnet50": ((224, 224, 3), 1000), "vgg11": ((32, 32, 3), 10), "vgg16": ((32, 32, 3), 10),
    "mlp": ((8, 8, 1), 10), "cnn": ((32, 32, 3), 10), "lenet": ((28, 28, 1), 10),
    "lstm": ((256,), 2), "transformer": ((256,), 2), "vit": ((32, 32, 3), 10),
}
TEXT_MODELS = ("lstm", "transformer")
# Each model's tests run on one pytest worker, with test_runs.py's files of that model.
MODEL_PARAMS = [pytest.param(name, marks=model_group(name)) for name in sorted(CANONICAL)]


def test_every_registered_model_has_a_canonical_case():
    assert set(models.names()) == set(CANONICAL)


def inputs_for(name, input_shape, batch, seed=0, vocab_size=20_000):
    rng = np.random.default_rng(seed)
    if name in TEXT_MODELS:
        return rng.integers(1, vocab_size, (batch,) + input_shape).astype("int32")
    return rng.standard_normal((batch,) + input_shape).astype("float32")


# Trainable parameters the papers and Keras give: WRN-28-10 36.5M (Zagoruyko and Komodakis
# 2016), ResNet-18 on CIFAR 11.2M (He et al. 2016, CIFAR stem), and Keras's own
# `keras.applications.ResNet50(weights=None).count_params()`, all parameters, exactly.
LITERATURE_COUNTS = {"wrn": (36.5e6, 0.01), "resnet18": (11.2e6, 0.01),
                     "resnet50": (25_636_712, 0)}


@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_model_outputs_logits_names_its_features_and_has_the_literature_size(name):
    input_shape, num_classes = CANONICAL[name]
    model = models.build(name, input_shape, num_classes)
    # The shapes as Keras infers them while it builds the graph; the values of a forward pass
    # are test_one_sgd_step_lowers_the_loss's (compiling the canonical resnet50 or WRN-28-10 on
    # a CPU takes longer than the rest of this file).
    assert tuple(model.input.shape) == (None, *input_shape)
    assert tuple(model.output.shape) == (None, num_classes)
    readout = model.get_layer("logits")
    assert readout.activation is keras.activations.linear
    assert model.output is readout.output
    features = model.get_layer("features")
    assert readout.input is features.output  # `features` is the penultimate representation
    if name in LITERATURE_COUNTS:
        expected, tolerance = LITERATURE_COUNTS[name]
        count = model.count_params() if name == "resnet50" else trainable_count(model)
        assert abs(count - expected) <= tolerance * expected, (name, count)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_model_names_carry_their_size():
    assert models.build("wrn", (32, 32, 3), 10, depth=16, width=4).name == "wrn_16_4"


STEP_CASES = {  # smaller variants where the canonical model is slow to compile on a CPU
    "wrn": ((32, 32, 3), 10, dict(depth=10, width=2)),
    "resnet50": ((64, 64, 3), 10, {}),
    "lstm": ((32,), 2, dict(vocab_size=100)),
    "transformer": ((32,), 2, dict(vocab_size=100, dropout=0.0)),
    "vit": ((32, 32, 3), 10, dict(depth=2)),
}


@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_one_sgd_step_lowers_the_loss(name):
    input_shape, num_classes, options = STEP_CASES.get(name, CANONICAL[name] + ({},))
    model = models.build(name, input_shape, num_classes, **options)
    x = inputs_for(name, input_shape, 8, vocab_size=options.get("vocab_size", 20_000))
    y = np.random.default_rng(1).integers(0, num_classes, 8)
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  loss=tc.losses.TemperatureCrossEntropy(beta=1.0))
    # train_on_batch returns the loss before its update: the second call sees one step's effect.
    before = float(model.train_on_batch(x, y))
    after = float(model.train_on_batch(x, y))
    assert np.isfinite(before) and after < before


def test_weight_decay_adds_half_lambda_squared_norm_of_kernels():
    model = models.build("mlp", (4,), 3, depth=1, width=5, weight_decay=0.1)
    model(np.zeros((1, 4), "float32"))
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    expected = sum(0.05 * float(np.sum(ops.convert_to_numpy(k) ** 2)) for k in kernels)
    assert len(kernels) == 2
    np.testing.assert_allclose(float(sum(ops.convert_to_numpy(l) for l in model.losses)),
                               expected, rtol=1e-5)
    assert models.build("mlp", (4,), 3).losses == []


def test_readout_init_scale_scales_the_readout_only():
    def readout_std(scale):
        keras.utils.set_random_seed(0)
        model = models.build("cnn", (16, 16, 3), 10, readout_init_scale=scale)
        return float(np.std(ops.convert_to_numpy(model.get_layer("logits").kernel)))

    assert readout_std(0.1) == pytest.approx(0.1 * readout_std(1.0), rel=1e-5)
    assert readout_std(0.0) == 0.0
    with pytest.raises(ValueError, match="readout_init_scale"):
        models.build("mlp", (4,), 3, readout_init_scale=-1.0)


def test_unknown_models_and_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid models: wrn, resnet18"):
        models.build("resnet19", (32, 32, 3), 10)
    with pytest.raises(ValueError, match=r"\['heads'\].*valid options: .*num_heads"):
        models.build("vit", (32, 32, 3), 10, heads=4)
    with pytest.raises(ValueError, match="depth"):
        models.build("wrn", (32, 32, 3), 10, depth=27)
    with pytest.raises(ValueError, match="num_classes"):
        models.build("mlp", (4,), 1)
    with pytest.raises(ValueError, match="activation"):
        models.build("mlp", (4,), 3, activation="softmax")
    with pytest.raises(ValueError, match="divisible"):
        models.build("vit", (30, 30, 3), 10)


def test_models_save_and_load(tmp_path):
    for name, options in (("transformer", dict(vocab_size=50, depth=1, dim=16, num_heads=2)),
                          ("vit", dict(depth=1, dim=16, num_heads=2, mlp_dim=32))):
        input_shape = (8,) if name == "transformer" else (32, 32, 3)
        model = models.build(name, input_shape, 3, **options)
        x = inputs_for(name, input_shape, 2, vocab_size=50)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        np.testing.assert_allclose(ops.convert_to_numpy(keras.models.load_model(path)(x)),
                                   ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_default_models_exist_for_every_dataset():
    for dataset in tc.data.names():
        assert models.default_model(dataset) in models.names()
