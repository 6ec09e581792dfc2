"""Saving and loading a backbone's weights in Keras's own (optionally sharded) H5 layout."""

from presetforge import preset

DEFAULT_MAX_SHARD_SIZE_GB = 5.0


def weights_size(backbone):
    """Bytes the backbone's variables take at their stored dtype."""
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in backbone.weights)


def save(backbone, stage, max_shard_size_gb=DEFAULT_MAX_SHARD_SIZE_GB):
    """Write the weights into a preset stage: one file, or shards past ``max_shard_size_gb``."""
    stage.remove("model*.weights.*")
    if weights_size(backbone) > max_shard_size_gb * 1024**3:
        backbone.save_weights(stage.file(preset.SHARDED_WEIGHTS_FILE), max_shard_size=max_shard_size_gb)
    else:
        backbone.save_weights(stage.file(preset.WEIGHTS_FILE))


def load(backbone, root):
    """Fill the backbone's variables from a preset directory's weights."""
    sharded = root / preset.SHARDED_WEIGHTS_FILE
    backbone.load_weights(sharded if sharded.is_file() else root / preset.WEIGHTS_FILE)
