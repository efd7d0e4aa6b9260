"""`python -m tc.data.prepare NAME [--data_dir=DIR]`: download and prepare a TFDS dataset.

    python -m tc.data.prepare cifar10 --data_dir=~/tensorflow_datasets
    python -m tc.data.prepare tfds:kmnist

It runs TFDS's own `download_and_prepare` (network needed), the Python call that works in the
pinned environment: TFDS's `tfds build` command line also imports apache_beam, which is not
installed. Fashion-MNIST needs neither on Debian and Ubuntu: `apt-get install
dataset-fashion-mnist`.
"""

import argparse
import sys

from tc.data import tfds_source

__all__ = ["main", "prepare"]


def prepare(name, data_dir=None):
    """Downloads and prepares TFDS dataset `name` (a registry name or `tfds:<name>`) under
    `data_dir` (default `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`); returns its folder."""
    if name.startswith(tfds_source.ANY_PREFIX):
        name = name[len(tfds_source.ANY_PREFIX):]
    builder = tfds_source.open_builder(name, tfds_source.resolve_data_dir(data_dir), download=True)
    return str(builder.data_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tc.data.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a TFDS dataset: cifar10, svhn_cropped, fashion_mnist, "
                                     "tfds:kmnist, ...")
    parser.add_argument("--data_dir", default=None,
                        help="TFDS data directory (default $TFDS_DATA_DIR, else "
                             "~/tensorflow_datasets)")
    arguments = parser.parse_args(argv)
    try:
        where = prepare(arguments.name, arguments.data_dir)
    except ValueError as error:
        parser.exit(1, f"error: {error}\n")
    print(f"{arguments.name} is prepared in {where}")


if __name__ == "__main__":
    sys.exit(main())
