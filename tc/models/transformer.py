"""Transformer encoders: a small text transformer (IMDB) and a tiny ViT for 32x32 images.

Both use pre-norm encoder blocks, `x + MHA(LN(x))` then `x + MLP(LN(x))` with a GELU MLP
(Vaswani et al. 2017; Dosovitskiy et al. 2021), learned position embeddings, and mean pooling
over tokens as `features`.
"""

import keras
from keras import ops

from tc.models import common

__all__ = ["encoder_block", "PositionEmbedding", "text_transformer", "vit"]


@keras.saving.register_keras_serializable(package="tc")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned `(sequence_length, dim)` position embedding to `(batch, length, dim)` input."""

    def __init__(self, initializer_stddev=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_stddev = initializer_stddev

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]), name="embedding",
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_stddev))

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "initializer_stddev": self.initializer_stddev}


def encoder_block(x, num_heads, mlp_dim, dropout, weight_decay, name):
    dim = x.shape[-1]
    regularizer = common.kernel_regularizer(weight_decay)
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    y = keras.layers.MultiHeadAttention(
        num_heads, dim // num_heads, dropout=dropout, kernel_regularizer=regularizer,
        name=f"{name}_attention")(y, y)
    x = keras.layers.Add()([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", kernel_regularizer=regularizer,
                           name=f"{name}_mlp1")(y)
    y = keras.layers.Dense(dim, kernel_regularizer=regularizer, name=f"{name}_mlp2")(y)
    if dropout:
        y = keras.layers.Dropout(dropout)(y)
    return keras.layers.Add(name=f"{name}_out")([x, y])


def _check_heads(dim, num_heads):
    common.check_positive_int("num_heads", num_heads)
    if dim % num_heads:
        raise ValueError(f"The width ({dim}) must be divisible by num_heads ({num_heads}).")


def _encoder(tokens, depth, num_heads, mlp_dim, dropout, weight_decay):
    x = PositionEmbedding(name="position_embedding")(tokens)
    for block in range(depth):
        x = encoder_block(x, num_heads, mlp_dim, dropout, weight_decay, f"block{block + 1}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    return keras.layers.GlobalAveragePooling1D(name="features")(x)


def vit(input_shape=(32, 32, 3), num_classes=10, patch_size=4, dim=192, depth=12, num_heads=3,
        mlp_dim=768, dropout=0.0, weight_decay=0.0, readout_init_scale=1.0):
    """ViT-Tiny widths (192, 12 blocks, 3 heads) on `patch_size` patches; 64 tokens at 32x32."""
    for name, value in (("patch_size", patch_size), ("dim", dim), ("depth", depth),
                        ("mlp_dim", mlp_dim)):
        common.check_positive_int(name, value)
    _check_heads(dim, num_heads)
    if input_shape[0] % patch_size or input_shape[1] % patch_size:
        raise ValueError(f"Input {input_shape[:2]} is not divisible into {patch_size}x"
                         f"{patch_size} patches.")
    inputs = keras.Input(input_shape)
    patches = keras.layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embedding",
                                  kernel_regularizer=common.kernel_regularizer(weight_decay))(inputs)
    tokens = keras.layers.Reshape((-1, dim))(patches)
    features = _encoder(tokens, depth, num_heads, mlp_dim, dropout, weight_decay)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="vit")


def text_transformer(input_shape=(256,), num_classes=2, vocab_size=20_000, dim=128, depth=2,
                     num_heads=4, mlp_dim=256, dropout=0.1, weight_decay=0.0,
                     readout_init_scale=1.0):
    """A small text encoder over token ids `(sequence_length,)`."""
    for name, value in (("vocab_size", vocab_size), ("dim", dim), ("depth", depth),
                        ("mlp_dim", mlp_dim)):
        common.check_positive_int(name, value)
    _check_heads(dim, num_heads)
    inputs = keras.Input(input_shape, dtype="int32")
    tokens = keras.layers.Embedding(vocab_size, dim, name="token_embedding")(inputs)
    features = _encoder(tokens, depth, num_heads, mlp_dim, dropout, weight_decay)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="transformer")
