"""The converter contract: a registry keyed by HF ``model_type`` and the data a converter is made of.

A converter is a class holding data, not a procedure: which config flags it
refuses, how the upstream config becomes backbone arguments, which upstream
tensor fills which Keras variable (``tensors``, with ``{i}`` for the layer
index), and which upstream tensors it leaves unused on purpose (``ignore``).
The shared machinery in ``presetforge.converters.convert`` does the rest and
enforces coverage, so a converter cannot silently drop or invent a weight.
"""

import dataclasses
import re
from collections.abc import Callable

import numpy as np

from presetforge.errors import ConversionError

_REGISTRY = {}

# HF activation names (``hidden_act``, ``activation_function``) → backbone ``activation``.
# ``gelu`` is exact (erf) GELU; the tanh approximation has three HF spellings.
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


# Keys transformers writes into (nearly) every config.json that never change what a model
# computes in inference: identities, token ids, generation defaults, training-only settings.
COMMON_IRRELEVANT_KEYS = frozenset(
    {
        "_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
        "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "cls_token_id", "unk_token_id",
        "mask_token_id", "decoder_start_token_id", "tokenizer_class", "use_cache", "initializer_range",
        "output_attentions", "output_hidden_states", "return_dict", "torchscript", "use_bfloat16",
        "id2label", "label2id", "num_labels", "problem_type", "finetuning_task", "task_specific_params",
        "prefix", "gradient_checkpointing", "tf_legacy_loss", "chunk_size_feed_forward",
        "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
        "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
        "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
        "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
        "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
        "suppress_tokens", "begin_suppress_tokens",
    }
)


class _Reading(dict):
    """A config dict that remembers which keys were read: what ``backbone_config`` consumed."""

    def __init__(self, config):
        super().__init__(config)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def register(model_type):
    """Class decorator: make the converter the one for HF ``model_type``."""

    def decorate(cls):
        if model_type in _REGISTRY:
            raise ValueError(
                f"a converter for model_type '{model_type}' is already registered: {_REGISTRY[model_type]}"
            )
        cls.model_type = model_type
        _REGISTRY[model_type] = cls
        return cls

    return decorate


def model_types():
    """Every HF ``model_type`` a converter is registered for, sorted."""
    return sorted(_REGISTRY)


def get_converter(model_type):
    """A new instance of the converter for ``model_type``; ``ConversionError`` if there is none."""
    try:
        return _REGISTRY[model_type]()
    except (KeyError, TypeError):
        raise ConversionError(
            f"no converter for model_type {model_type!r}; presetforge converts {', '.join(model_types())}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Rule:
    """How one upstream tensor fills Keras variables: ``transform`` maps the array to
    one array per target, in order (views where possible: no copies)."""

    targets: tuple
    transform: Callable
    # The transform maps any block of rows (a slice along axis 0) of an array with
    # at least this many dimensions to the same rows of each target: the tensor
    # can then stream in small blocks. ``None``: it needs the whole tensor.
    rowwise_from_ndim: int | None = None

    def __call__(self, array):
        return tuple(self.transform(array))

    def rowwise(self, ndim):
        """Whether a tensor of ``ndim`` dimensions can be converted a block of rows at a time."""
        return self.rowwise_from_ndim is not None and ndim >= self.rowwise_from_ndim

    def format(self, **fields):
        return dataclasses.replace(self, targets=tuple(t.format(**fields) for t in self.targets))


def copy(target):
    """The tensor as is (GPT-2's ``Conv1D`` weights are already ``[in, out]`` like Keras ``Dense``)."""
    return Rule((target,), lambda a: (a,), rowwise_from_ndim=1)


def transpose(target):
    """A ``torch.nn.Linear`` weight (``[out, in]``) as a Keras ``Dense`` kernel (``[in, out]``)."""
    return transposed(copy(target))


def transposed(rule):
    """``rule`` with each of its parts transposed: a fused ``torch.nn.Linear`` weight cut along its
    first axis (Phi-3's ``qkv_proj``) becomes ``Dense`` kernels. Needs the whole tensor; the parts
    stay views of it."""
    return Rule(rule.targets, lambda a: tuple(part.T for part in rule.transform(a)))


def _rowwise_after_cut(axis):
    """``rowwise_from_ndim`` of a cut along ``axis``: cutting along any axis but the first keeps rows
    whole; a negative axis is the first for tensors of -axis dimensions (axis -1 of a bias), so needs one more."""
    return None if axis == 0 else axis + 1 if axis > 0 else 1 - axis


def split(*targets, axis=-1):
    """A fused tensor cut into equal parts along ``axis``, one per target (GPT-2's ``c_attn`` into q, k, v)."""
    cut = lambda a: np.split(a, len(targets), axis=axis)  # noqa: E731
    return Rule(tuple(targets), cut, rowwise_from_ndim=_rowwise_after_cut(axis))


def split_sizes(targets, sizes, axis=-1):
    """A fused tensor cut along ``axis`` into consecutive parts of ``sizes``, one per target: Phi-3's
    ``qkv_proj``, whose key and value parts are smaller than the query's under grouped-query attention."""
    targets, sizes = tuple(targets), tuple(sizes)
    if len(targets) != len(sizes):
        raise ValueError(f"{len(targets)} targets but {len(sizes)} sizes")

    def cut(a):
        length = a.shape[axis] if -a.ndim <= axis < a.ndim else None
        if length != sum(sizes):
            raise ValueError(f"its axis {axis} does not hold the {' + '.join(map(str, sizes))} entries of its parts")
        return np.split(a, np.cumsum(sizes)[:-1], axis=axis)

    return Rule(targets, cut, rowwise_from_ndim=_rowwise_after_cut(axis))


class Converter:
    """Base of every converter; subclasses fill in the class attributes and ``backbone_config``.

    Attributes:
        version: bumped whenever the converter's output for the same input changes.
        backbone_cls: the ``Backbone`` subclass built.
        prefixes: leading module names stripped from upstream names when present
            (``transformer.`` of ``GPT2LMHeadModel``, ``bert.`` of ``BertForPreTraining``).
        renames: ``(pattern, replacement)`` regexes applied after the prefix, for
            legacy spellings (BERT's ``LayerNorm.gamma``).
        ignore: regexes (full match, after prefix and renames) of upstream tensors
            deliberately left unused: buffers, tied or task heads.
        required: config key → (the only value implemented, what the flag does).
            Any other value is refused; a missing key means the implemented value.
        irrelevant: config keys that do not change what the model computes in
            inference (dropout rates, say), besides ``COMMON_IRRELEVANT_KEYS``.
            Every other key must be read by ``backbone_config``, or the config is refused.
        tensors: upstream name (after prefix and renames; ``{i}`` is the layer
            index) → Keras variable path, or a ``Rule`` for anything but a copy.
        num_layers_arg: the backbone argument giving the number of ``{i}`` values.
    """

    model_type = None  # set by @register
    version = 1
    backbone_cls = None
    prefixes = ()
    renames = ()
    ignore = ()
    required = {}
    irrelevant = ()
    tensors = {}
    num_layers_arg = "num_layers"

    @property
    def name(self):
        return self.model_type

    def backbone_config(self, config):
        """The backbone constructor arguments for an upstream ``config.json`` (a dict)."""
        raise NotImplementedError

    def checkpoint_arguments(self, tensor_names):
        """Backbone arguments that the checkpoint's tensors decide, not its config, from their
        canonical names (RoBERTa's pooler: some checkpoints carry it, some do not). None here."""
        return {}

    def reference_stages(self, model):
        """For the parity check: the transformers module whose output matches each stage
        of ``Backbone.hidden_states``, by stage name, in order."""
        raise NotImplementedError

    # -- shared helpers; subclasses do not override these ------------------------

    def arguments(self, config, tensor_names=None):
        """The backbone's constructor arguments for an upstream ``config.json`` (a dict), after
        proving every key of it is honoured: read by ``backbone_config``, a flag with the one
        value implemented, or irrelevant to the numbers. Anything else is a ``ConversionError``.
        Given the checkpoint's ``tensor_names``, what they decide (``checkpoint_arguments``) is added."""
        self.check_config(config)
        reading = _Reading(config)
        arguments = self.backbone_config(reading)
        if tensor_names is not None:
            arguments |= self.checkpoint_arguments({self.canonical_name(name) for name in tensor_names})
        unknown = sorted(set(config) - reading.read - set(self.required) - set(self.irrelevant) - COMMON_IRRELEVANT_KEYS)
        if unknown:
            raise ConversionError(
                f"{self.model_type} config key {', '.join(repr(k) for k in unknown)} is not understood by the "
                f"{self.name} converter; refusing to ignore it (it may change what the model computes)"
            )
        return arguments

    def check_config(self, config):
        """Refuse any flag whose value this converter (and the backbone) does not implement."""
        for key, (implemented, meaning) in self.required.items():
            value = config.get(key, implemented)
            if value != implemented:
                raise ConversionError(
                    f"{self.model_type} checkpoint sets {key}={value!r} ({meaning}); "
                    f"{self.backbone_cls.__name__} only implements {key}={implemented!r}, "
                    "so converting it would give a model that computes something else"
                )

    @staticmethod
    def pick(config, key, table, default=None):
        """``table[config.get(key, default)]``, or a ``ConversionError`` listing the values this converter knows."""
        value = config.get(key, default)
        if value not in table:
            raise ConversionError(
                f"{key}={value!r} is not supported; supported values: {', '.join(repr(v) for v in table)}"
            )
        return table[value]

    def canonical_name(self, name):
        """An upstream tensor name without its optional prefix and with legacy spellings renamed."""
        for prefix in self.prefixes:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        for pattern, replacement in self.renames:
            name = re.sub(pattern, replacement, name)
        return name

    def is_ignored(self, canonical_name):
        return any(re.fullmatch(pattern, canonical_name) for pattern in self.ignore)

    def tensor_map(self, arguments):
        """``tensors`` for a backbone built with ``arguments``; override to add tensors that only
        some configurations have (an untied LM head, say)."""
        return self.tensors

    def expected_tensors(self, arguments):
        """Every upstream tensor (canonical name) a backbone built with ``arguments`` needs, with
        the rule that converts it."""
        num_layers = arguments[self.num_layers_arg]
        expected = {}
        for template, rule in self.tensor_map(arguments).items():
            rule = copy(rule) if isinstance(rule, str) else rule
            indices = range(num_layers) if "{i}" in template else [None]
            for i in indices:
                name = template.format(i=i) if i is not None else template
                expected[name] = rule.format(i=i) if i is not None else rule
        return expected
