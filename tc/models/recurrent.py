"""The LSTM text classifier of paper 1's IMDB experiments: embedding + LSTM + linear readout."""

import keras

from tc.models import common

__all__ = ["lstm"]


def lstm(input_shape=(256,), num_classes=2, vocab_size=20_000, embedding_dim=128, units=128,
         bidirectional=False, weight_decay=0.0, readout_init_scale=1.0):
    """Token ids `(sequence_length,)` -> Embedding (padding id 0 masked) -> LSTM (`features`)."""
    for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                        ("units", units)):
        common.check_positive_int(name, value)
    regularizer = common.kernel_regularizer(weight_decay)
    inputs = keras.Input(input_shape, dtype="int32")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                               name="token_embedding")(inputs)
    recurrent = keras.layers.LSTM(units, kernel_regularizer=regularizer,
                                  name=None if bidirectional else "features")
    if bidirectional:
        recurrent = keras.layers.Bidirectional(recurrent, name="features")
    features = recurrent(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="lstm")
