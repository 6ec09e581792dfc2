"""``Backbone``: the functional Keras model every architecture derives from, and its preset I/O."""

import inspect

import keras

from presetforge import preset
from presetforge.backbones import lora, weights
from presetforge.errors import PresetError, hdf5_errors
from presetforge.registry import catalog, handles
from presetforge.version import __version__


_NOT_ARGUMENTS = ("self", "dtype", "kwargs")  # what a backbone's constructor takes besides its architecture


class _ClassProperty:
    """``cls.presets`` must work on the class itself, which ``property`` cannot do."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


def _subclasses(cls):
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def backbone_class(serialized, root):
    """The ``Backbone`` subclass a preset's serialized ``config.json`` names, or a one-line error."""
    backbone_cls = keras.saving.get_registered_object(serialized.get("registered_name"))
    if not (isinstance(backbone_cls, type) and issubclass(backbone_cls, Backbone)):
        raise PresetError(f"{root} does not hold a presetforge backbone ({serialized.get('registered_name')!r})")
    return backbone_cls


@keras.saving.register_keras_serializable(package="presetforge")
class Backbone(keras.Model):
    """Base of all presetforge backbones: a functional ``keras.Model`` with preset I/O.

    Subclasses build their layers and symbolic graph, record every stage's
    output with ``_record_hidden_states`` and call ``super().__init__`` with
    the graph's inputs and outputs, as keras-hub backbones do. Each sets
    ``token_embedding``, the ``keras.layers.Embedding`` of its token ids;
    language models set ``language_model = True`` and make it a
    ``ReversibleEmbedding``, whose reverse direction is their LM head.
    """

    language_model = False
    # ``checkpoint_dir -> preset_dir``: how ``from_preset`` turns a raw Hugging Face checkpoint into a
    # preset. Conversion is a layer above the backbones, so it is set from there: ``presetforge``'s
    # public API (``presetforge.Backbone`` and the family classes) sets it on first use.
    convert_checkpoint = None

    def __init__(self, *args, dtype=None, trainable=True, **kwargs):
        super().__init__(*args, dtype=dtype, **kwargs)
        if dtype is not None:
            # keras.Model's functional constructor drops ``dtype``; without this
            # get_config would say float32 and a bfloat16 preset reload as float32.
            self.dtype_policy = keras.dtype_policies.get(dtype)
        self.trainable = trainable

    @staticmethod
    def _policy(dtype):
        """The dtype policy every sublayer is built with (``None``: Keras's global one)."""
        return keras.dtype_policies.get(dtype) if dtype is not None else None

    def _record_hidden_states(self, named_tensors):
        """Keep the symbolic output of each stage (name → tensor), in forward order."""
        self._hidden_state_names = tuple(named_tensors)
        self._hidden_state_tensors = tuple(named_tensors.values())

    def hidden_states(self, inputs):
        """Every stage's output for ``inputs`` as an ordered dict: ``embeddings``,
        ``layer_0`` … ``layer_{n-1}``, then ``final``; for layer-by-layer parity."""
        staged = keras.Model(self.input, list(self._hidden_state_tensors))
        return dict(zip(self._hidden_state_names, staged(inputs)))

    def stage_models(self):
        """Every stage on its own, for parity run a stage at a time: an ordered dict of stage
        name → ``keras.Model`` taking ``[previous stage's output, *inputs]`` (the first stage
        takes just ``inputs``), inputs in ``self.input`` order. Each model's ``weights`` are
        exactly the variables its stage uses, so a caller can load and drop them per stage."""
        inputs = [self.input[name] for name in self.input]

        def build():  # without reading a variable: a streamed backbone's have no values yet
            models, previous = {}, None
            for name, tensor in zip(self._hidden_state_names, self._hidden_state_tensors):
                models[name] = keras.Model(inputs if previous is None else [previous, *inputs], tensor)
                previous = tensor
            return models

        return weights.deferred_variables(build)

    def logits(self, hidden_states):
        """Vocabulary logits for final hidden states, through the LM head (language models only)."""
        if not self.language_model:
            raise TypeError(f"{type(self).__name__} is not a language model; it has no LM head")
        return self.token_embedding(hidden_states, reverse=True)

    def _remember_arguments(self, values):
        """Keep the constructor's arguments as attributes, for ``get_config``.

        ``values`` is the constructor's ``locals()`` at its end, so defaults it
        filled in (a key/value head count, a rope) are kept as filled.
        """
        names = [name for name in inspect.signature(type(self).__init__).parameters if name not in _NOT_ARGUMENTS]
        self._argument_names = tuple(names)
        for name in names:
            setattr(self, name, values[name])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **{name: getattr(self, name) for name in getattr(self, "_argument_names", ())},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @_ClassProperty
    def presets(cls):
        """Built-in presets of this class and its subclasses, from the catalog."""
        return catalog.for_classes({sub.__name__ for sub in _subclasses(cls)})

    @classmethod
    def from_preset(cls, preset_handle, load_weights=True, **kwargs):
        """Build the backbone a preset describes; ``kwargs`` override its saved config.

        On ``Backbone`` this returns whatever subclass the preset holds; on a
        subclass, a preset of another architecture is an error.
        """
        root = handles.resolve(preset_handle, cls.convert_checkpoint)
        # Small files are verified at once; the weights hash in the background
        # while the model is built, and must match before a byte of them is read.
        # Everything is read through the verification, so only verified bytes are.
        with preset.Verification(root) as verification:
            serialized = verification.read_json(preset.CONFIG_FILE)
            backbone_cls = backbone_class(serialized, root)
            if not issubclass(backbone_cls, cls):
                raise PresetError(f"{root} holds a {backbone_cls.__name__}, not a {cls.__name__}")
            config = {**serialized["config"], **kwargs}
            if not load_weights:
                return backbone_cls.from_config(config)
            # No random initial values: each variable is created from the weights read.
            backbone = weights.deferred_variables(lambda: backbone_cls.from_config(config))
            weights.load(backbone, root, verification)
            # What LoRA files are tied to, from the very manifest verified.
            backbone._base_weights_sha256 = preset.weights_digest(root, verification.manifest_files)
        return backbone

    def save_to_preset(self, preset_dir, metadata=None, max_shard_size_gb=weights.DEFAULT_MAX_SHARD_SIZE_GB):
        """Write config, weights and metadata into ``preset_dir`` atomically.

        ``metadata`` adds entries (provenance, parity summary) to the generated
        ``metadata.json``. Files other writers put there (a tokenizer) are kept.
        """
        with preset.writing(preset_dir) as stage, hdf5_errors(preset_dir):
            weights.save(self, stage, max_shard_size_gb)
            self._stage_config_and_metadata(stage, metadata)
        self._base_weights_sha256 = preset.weights_digest(preset_dir)

    def _stage_config_and_metadata(self, stage, metadata=None):
        """Write ``config.json`` and ``metadata.json`` into a preset stage.

        Shared by ``save_to_preset`` and the converters (which write the weights
        themselves, streaming), so both describe a backbone the same way; this
        needs only the variables' shapes, never their values.
        """
        preset.write_json(stage.file(preset.CONFIG_FILE), keras.saving.serialize_keras_object(self))
        preset.write_json(stage.file(preset.METADATA_FILE), {**self._metadata(), **(metadata or {})})

    def _metadata(self):
        return {
            "format_version": preset.FORMAT_VERSION,
            "backbone_class": type(self).__name__,
            "keras_version": keras.__version__,
            "presetforge_version": __version__,
            "parameter_count": self.count_params(),
            "dtype": self.dtype_policy.variable_dtype,
            "date": preset.build_date(),
        }

    def enable_lora(self, rank, target_names=None):
        """Freeze every weight, then add rank-``rank`` LoRA to the attention query and value projections."""
        lora.enable(self, rank, target_names)

    def save_lora_weights(self, path):
        """Save the LoRA weights keyed by stable layer paths, with their rank, targets and the
        weights digest of the preset this backbone was loaded from (or last saved to)."""
        lora.save(self, path)

    def load_lora_weights(self, path, strict=True):
        """Load LoRA weights saved by ``save_lora_weights``; a file for another model is refused,
        and so, unless ``strict=False``, is one trained on other base weights."""
        lora.load(self, path, strict=strict)
