"""IMDB text to token ids with Keras `TextVectorization`, fitted on the training split only."""

import numpy as np

__all__ = ["standardize", "vectorize"]


def standardize(texts):
    """Lower-case, drop IMDB's `<br />` tags, strip punctuation."""
    import tensorflow as tf

    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, "<br />", " ")
    return tf.strings.regex_replace(texts, r"[^\w\s']", " ")


def vectorize(splits, vocab_size, sequence_length):
    """Maps `{split: (texts, labels)}` to `{split: (int32 token ids, labels)}`.

    The vocabulary (`vocab_size` tokens, including padding 0 and OOV 1) comes from the training
    texts alone; sequences are padded or truncated to `sequence_length`.
    """
    import keras

    if vocab_size < 3 or sequence_length < 1:
        raise ValueError(f"vocab_size must be >= 3 and sequence_length >= 1; got "
                         f"{vocab_size} and {sequence_length}.")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocab_size, output_sequence_length=sequence_length, standardize=standardize)
    vectorizer.adapt(splits["train"][0])
    vectorized = {}
    for split, (texts, labels) in splits.items():
        chunks = [np.asarray(vectorizer(texts[start:start + 4096]), dtype=np.int32)
                  for start in range(0, len(texts), 4096)]
        tokens = (np.concatenate(chunks) if chunks
                  else np.zeros((0, sequence_length), dtype=np.int32))
        vectorized[split] = (tokens, labels)
    return vectorized
