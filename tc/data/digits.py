"""`digits`: scikit-learn's bundled UCI handwritten digits (8x8x1, 10 classes; no download).

1,797 images with 16 gray levels, scaled to [0, 1]. Fixed stratified splits: 20% test, then
`validation_size` of the rest for validation (default 20% of the total), both from `data_seed`
(fixed by default, so that runs of every seed share them).
"""

import numpy as np

from tc.data import base

__all__ = ["load"]


def load(validation_size=360, test_size=360, data_seed=0, classes=None):
    """Loads digits as an `ArrayDataset` with stratified train/validation/test splits.

    Args:
        validation_size: validation examples, carved from the non-test part.
        test_size: test examples.
        data_seed: fixes both stratified splits.
        classes: keep only these digits, relabelled 0..k-1 in the order given.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    num_classes = 10
    if classes is not None:
        ((x, y),), num_classes = base.keep_classes([(x, y)], classes, num_classes, "digits")
    if not 0 < test_size < len(y) - 10 or not 0 <= validation_size < len(y) - test_size - 10:
        raise ValueError(
            f"digits has {len(y)} examples: test_size={test_size} and "
            f"validation_size={validation_size} leave too few for training."
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=data_seed)
    if validation_size:
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=validation_size, stratify=y_rest, random_state=data_seed)
    else:
        x_train, y_train, x_val, y_val = x_rest, y_rest, None, None
    spec = base.DatasetSpec(
        name="digits", num_classes=num_classes, input_shape=(8, 8, 1),
        split_sizes={"train": len(y_train), "validation": validation_size, "test": len(y_test)},
    )
    return base.ArrayDataset(spec, {"train": (x_train, y_train), "validation": (x_val, y_val),
                                    "test": (x_test, y_test)})
