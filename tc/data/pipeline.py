"""`tf.data` pipelines: per-epoch deterministic training streams and plain evaluation streams.

Training stream = epochs `first_epoch .. first_epoch + num_epochs - 1` back to back, each in its
own order (`order.epoch_order(n, seed, epoch)` for in-memory data; a shuffle buffer seeded from
(seed, epoch) for streamed data, one concatenated pipeline per epoch), with full batches only. Pass it to `fit` with
`steps_per_epoch = dataset.steps_per_epoch(batch_size)` and `initial_epoch = first_epoch`: a
resumed run then sees the same batches as an uninterrupted one.

In-memory data is gathered and preprocessed a whole batch at a time, with
`tc.data.preprocessing`'s normalization and augmentation (and so the random numbers of the
device stream and of `arrays()`): tf.data's per-example overhead cost a 2-core CPU 1.6 s of CPU
time per 50,000-image epoch. Streamed imagenet is preprocessed per example, with stateless random
ops seeded from (seed, epoch, position): random-resized crop to 224 (area 8%-100%, aspect
3/4-4/3) + flip for training; resize the short side to 256 + central 224 crop for evaluation;
normalization.
"""

import numpy as np

from tc.data import order, preprocessing

__all__ = ["array_pipeline", "augmented_batch", "preprocess", "SEED_STRIDE", "streaming_pipeline"]

SEED_STRIDE = 1_000_003  # keeps (seed, epoch) pairs apart in the stateless seed


def _tf():
    import tensorflow as tf

    return tf


def _normalize(image, spec):
    return preprocessing.normalize(image, spec, preprocessing.tensorflow_ops())


def _random_resized_crop(image, seed, size=224):
    tf = _tf()
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=box_seed,
        min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, [size, size], method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def _resize_center_crop(image, resize=256, size=224):
    tf = _tf()
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new_shape, method="bilinear")
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def preprocess(image, spec, training, seed=None):
    """An input preprocessed for evaluation (or, for imagenet, for training with `seed`).

    In-memory families take whole batches; their training augmentation is `augmented_batch`.
    """
    tf = _tf()
    if spec.preprocessing == "imagenet":
        image = (_random_resized_crop(tf.cast(image, tf.float32), seed) if training
                 else _resize_center_crop(tf.cast(image, tf.float32)))
    return _normalize(image, spec)


def augmented_batch(images, offsets, flips, spec):
    """A training batch of an in-memory family, as `tc.data.preprocessing` makes it."""
    return preprocessing.training_batch(images, offsets, flips, spec,
                                        preprocessing.tensorflow_ops())


def _example_seed(seed, epoch, position):
    tf = _tf()
    return tf.stack([tf.cast(seed, tf.int64) * SEED_STRIDE + tf.cast(epoch, tf.int64),
                     tf.cast(position, tf.int64)])


def _deterministic(dataset):
    tf = _tf()
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _check_batch_size(batch_size, split_size, training):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if training and batch_size > split_size:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {split_size} training examples: an epoch would "
            "have no full batch.")


def array_pipeline(dataset, split, batch_size, seed=0, first_epoch=0, num_epochs=1,
                   training=None):
    """The pipeline of an `ArrayDataset` split; training by default for `"train"`."""
    tf = _tf()
    training = (split == "train") if training is None else training
    raw_x, labels = dataset.raw_arrays(split)
    _check_batch_size(batch_size, len(labels), training)
    spec = dataset.spec
    inputs = tf.constant(raw_x)
    labels = tf.constant(labels)
    if not training:
        def evaluated(x, y):
            return preprocess(x, spec, False), y

        examples = tf.data.Dataset.from_tensor_slices((inputs, labels))
        return _deterministic(examples.batch(batch_size).map(
            evaluated, num_parallel_calls=tf.data.AUTOTUNE))

    num_examples = len(raw_x)

    def order_of(epoch):
        return order.epoch_order(num_examples, seed, epoch).astype(np.int64)

    def one_epoch(epoch):
        order = tf.numpy_function(order_of, [epoch], tf.int64, stateful=False)
        order.set_shape([num_examples])

        def draws(step):
            offsets, flips = tf.numpy_function(
                lambda epoch_value, step_value: preprocessing.augmentation_draws(
                    batch_size, seed, epoch_value, step_value, spec),
                [epoch, step], (tf.int32, tf.bool), stateful=False)
            offsets.set_shape([batch_size, 2])
            flips.set_shape([batch_size])
            return offsets, flips

        def batch(step, index):
            images = tf.gather(inputs, index)
            if preprocessing.augments(spec):
                images = augmented_batch(images, *draws(step), spec)
            else:
                images = _normalize(images, spec)
            return images, tf.gather(labels, index)

        indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size,
                                                                  drop_remainder=True)
        return indices.enumerate().map(batch, num_parallel_calls=tf.data.AUTOTUNE)

    epochs = tf.data.Dataset.range(first_epoch, first_epoch + num_epochs)
    return _deterministic(epochs.flat_map(one_epoch))


def streaming_pipeline(dataset, split, batch_size, seed=0, first_epoch=0, num_epochs=1,
                       training=None):
    """The pipeline of a `StreamingDataset` (ImageNet) split."""
    tf = _tf()
    training = (split == "train") if training is None else training
    _check_batch_size(batch_size, dataset.split_sizes[split], training)
    spec = dataset.spec
    source = dataset.source(split)

    def checked(image, label):
        label = tf.cast(label, tf.int32)
        tf.debugging.assert_less(label, spec.num_classes,
                                 message=f"{spec.name}: label out of range")
        tf.debugging.assert_non_negative(label, message=f"{spec.name}: negative label")
        return image, label

    source = source.map(checked)
    if not training:
        evaluation = source.map(lambda x, y: (preprocess(x, spec, False), y),
                                num_parallel_calls=tf.data.AUTOTUNE)
        return _deterministic(evaluation.batch(batch_size))

    def one_epoch(epoch):
        # tf.data's shuffle takes only a Python seed, so each epoch is its own pipeline.
        shuffled = source.shuffle(dataset.shuffle_buffer, seed=seed * SEED_STRIDE + epoch,
                                  reshuffle_each_iteration=False).enumerate()
        epoch_data = shuffled.map(
            lambda position, example: (
                preprocess(example[0], spec, True, _example_seed(seed, epoch, position)),
                example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
        return epoch_data.batch(batch_size, drop_remainder=True)

    stream = one_epoch(first_epoch)
    for epoch in range(first_epoch + 1, first_epoch + num_epochs):
        stream = stream.concatenate(one_epoch(epoch))
    return _deterministic(stream)
