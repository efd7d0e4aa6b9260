"""The training runner behind `python -m tc.train`, `tc.tune` and `tc.bench` (internal: no API
promise; `import tc` does not load it).

- `config`: the RunConfig dataclass, its flags and flagfiles;
- `distribute`: where a run executes (tf.distribute strategies, keras.distribution on JAX);
- `optimization`: optimizer, learning-rate schedule and weight decay of a config;
- `inputs`: the dataset of a config and its splits in the form the backend trains on;
- `assembly`: the one assembly of a run, single or packed; `packing`: what only packing needs;
- `callbacks`: the epoch end (evaluation, divergence, ranks, commit), one owner per duty;
- `evaluation`: validation and test evaluation (one compiled program per split on JAX);
- `checkpoint`, `run_dir`: snapshots, atomic files, resume state;
- `results`: result.json, predictions and the linear probe;
- `search`: the keras-tuner search over beta.
"""
