"""Rotary position embedding settings of an upstream ``config.json``, normalised once.

Checkpoints carry their rope in one of two layouts: the older ``rope_theta`` +
``rope_scaling`` (keyed ``type`` or ``rope_type``; Gemma 3 adds
``rope_local_base_freq`` for its sliding layers), and the ``rope_parameters``
dict that transformers writes today (for Gemma 3, one dict per layer type).
``rope_parameters`` turns either into one canonical dict per layer type, with
every default resolved the way transformers resolves it, so the backbone's
``RotaryEmbedding`` has nothing left to guess and its config.json records
exactly what it computes. Anything transformers would not compute the same way
(an unknown type or key, a missing or malformed value) is refused by name.
"""

import math

from presetforge.errors import ConversionError

# The upstream keys read here, for a converter's config coverage.
ROPE_CONFIG_KEYS = frozenset(
    {
        "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor", "rope_local_base_freq",
        "original_max_position_embeddings", "max_position_embeddings",
    }
)

# Keys every rope type may carry besides its own; ``type`` is the older spelling of ``rope_type``.
_COMMON_KEYS = frozenset({"rope_type", "type", "rope_theta", "partial_rotary_factor"})

# Rope type -> (keys it requires, keys it may carry), as transformers validates them. A
# required ``original_max_position_embeddings`` is not listed: it has a default.
_TYPE_KEYS = {
    "default": ((), ()),
    "linear": (("factor",), ()),
    "dynamic": (("factor",), ()),
    "llama3": (("factor", "low_freq_factor", "high_freq_factor"), ("original_max_position_embeddings",)),
    "yarn": (
        ("factor",),
        ("original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
         "mscale_all_dim", "truncate"),
    ),
    "longrope": (("short_factor", "long_factor"), ("original_max_position_embeddings", "factor", "attention_factor")),
}


def rope_parameters(config, layer_type=None, default_theta=10000.0):
    """The canonical rope dict for ``layer_type``'s layers of an upstream config (a dict).

    ``layer_type`` is for families whose rope differs per layer type (Gemma 3:
    ``"full_attention"``, ``"sliding_attention"``); leave it ``None`` where one rope
    serves every layer, whatever the config's ``layer_types``. ``default_theta`` is
    the family's base when the config names none (Gemma 3: 1e6 global, 1e4 local).
    The result holds ``rope_type``, ``rope_theta``, ``partial_rotary_factor`` when
    below 1, and the type's own parameters with their defaults filled in;
    ``ConversionError`` for anything that cannot be honoured.
    """
    params, where, theta_key = _layer_entry(config, layer_type)
    rope_type = _rope_type(params, where)
    required, optional = _TYPE_KEYS[rope_type]
    unknown = sorted(set(params) - _COMMON_KEYS - set(required) - set(optional))
    if unknown:
        raise ConversionError(f"{where} key {unknown[0]!r} is not understood for rope type {rope_type!r}")
    missing = [key for key in required if key not in params]
    if missing:
        raise ConversionError(f"{where} lacks {missing[0]!r}, which rope type {rope_type!r} requires")

    theta = _positive(*_inherited(config, params, where, "rope_theta", theta_key, default_theta))
    canonical = {"rope_type": rope_type, "rope_theta": theta}
    partial, key, source = _inherited(config, params, where, "partial_rotary_factor", "partial_rotary_factor")
    if partial is not None:
        partial = _positive(partial, key, source)
        if partial > 1:
            raise ConversionError(f"{source} {key}={partial!r} is above 1")
        if partial < 1:
            canonical["partial_rotary_factor"] = partial
    context = _Context(config, params, where, per_layer=layer_type is not None)
    return {**canonical, **_TYPE_PARAMETERS[rope_type](context, canonical)}


def _layer_entry(config, layer_type):
    """The raw rope dict for ``layer_type`` (a copy), where it came from, and the top-level
    key holding its base in the older layout."""
    scaling, parameters = config.get("rope_scaling"), config.get("rope_parameters")
    if scaling is not None and parameters is not None:
        raise ConversionError("config has both 'rope_scaling' and 'rope_parameters'; refusing to pick one")
    theta_key = "rope_local_base_freq" if layer_type == "sliding_attention" else "rope_theta"
    if parameters is None:  # the older layout
        if layer_type not in (None, "full_attention", "sliding_attention"):
            raise ConversionError(f"rope_scaling has no settings for layer type {layer_type!r}")
        if layer_type == "sliding_attention":
            # Gemma 3: sliding layers keep the plain rope at their own base; rope_scaling is for global ones.
            if "rope_local_base_freq" not in config:
                raise ConversionError("config lacks 'rope_local_base_freq', the rope base of sliding layers")
            return {}, "config", theta_key
        return _dict(scaling or {}, "rope_scaling"), "rope_scaling", theta_key
    _dict(parameters, "rope_parameters")
    nested = bool(parameters) and all(isinstance(v, dict) or v is None for v in parameters.values())
    if not nested:
        if layer_type is not None:
            raise ConversionError(f"rope_parameters is not keyed by layer type; it has no entry for {layer_type!r}")
        return dict(parameters), "rope_parameters", theta_key
    where = f"rope_parameters[{layer_type!r}]"
    if layer_type is None:
        raise ConversionError(f"rope_parameters is keyed by layer type ({', '.join(parameters)}); name one")
    if parameters.get(layer_type) is None:
        raise ConversionError(f"{where} is missing")
    return _dict(parameters[layer_type], where), where, theta_key


def _inherited(config, params, where, key, top_key, default=None):
    """``(value, key, where)`` of ``params[key]``, or else of the config's top-level ``top_key``:
    a rope dict's own value wins, as transformers' ``setdefault`` has it."""
    if key in params:
        return params[key], key, where
    return config.get(top_key, default), top_key, "config"


def _rope_type(params, where):
    """Pop ``rope_type`` (or its older spelling ``type``) from ``params``: a type implemented here."""
    spellings = {params.pop(key) for key in ("rope_type", "type") if key in params}
    if len(spellings) > 1:
        raise ConversionError(f"{where} sets type and rope_type to different values: {sorted(map(str, spellings))}")
    rope_type = spellings.pop() if spellings else "default"
    if rope_type not in _TYPE_KEYS:
        raise ConversionError(
            f"{where} rope type {rope_type!r} is not implemented; presetforge implements {', '.join(_TYPE_KEYS)}"
        )
    return rope_type


class _Context:
    """What a rope type's parameters are read from: its dict, and the config around it."""

    def __init__(self, config, params, where, per_layer):
        self.config, self.params, self.where, self.per_layer = config, params, where, per_layer

    def number(self, key):
        """``params[key]``, a positive number."""
        return _positive(self.params.get(key), key, self.where)

    def factor_or_ratio(self, original):
        """``factor``, or where it is absent or null the ratio of the context to the pretraining one."""
        if self.params.get("factor") is None:
            return self.max_position_embeddings() / original
        return self.number("factor")

    def max_position_embeddings(self):
        return _count(self.config.get("max_position_embeddings"), "max_position_embeddings", "config")

    def original_max_position_embeddings(self):
        """The pretraining context; one rope dict's own value yields to a top-level one, as in transformers."""
        if not self.per_layer and "original_max_position_embeddings" in self.config:
            return _count(self.config["original_max_position_embeddings"], "original_max_position_embeddings", "config")
        own = self.params.get("original_max_position_embeddings")
        if own is not None:
            return _count(own, "original_max_position_embeddings", self.where)
        return self.max_position_embeddings()

    def factor_list(self, key, rotary_dim):
        values = self.params[key]
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise ConversionError(f"{self.where} {key} must be a list of numbers")
        if len(values) != rotary_dim // 2:
            raise ConversionError(
                f"{self.where} {key} has {len(values)} entries; "
                f"a rotary dimension of {rotary_dim} needs {rotary_dim // 2}"
            )
        return [float(v) for v in values]

    def rotary_dim(self, partial):
        """The rotated features per head, from the config's head size as transformers derives it."""
        head_dim = self.config.get("head_dim")
        if not head_dim:
            hidden, heads = self.config.get("hidden_size"), self.config.get("num_attention_heads")
            if not (isinstance(hidden, int) and isinstance(heads, int) and heads > 0):
                raise ConversionError("config names no head size (head_dim, or hidden_size and num_attention_heads)")
            head_dim = hidden // heads
        return int(head_dim * partial)


def _default(context, canonical):
    return {}


def _linear(context, canonical):
    return {"factor": context.number("factor")}


def _dynamic(context, canonical):
    return {"factor": context.number("factor"), "max_position_embeddings": context.max_position_embeddings()}


def _llama3(context, canonical):
    low, high = context.number("low_freq_factor"), context.number("high_freq_factor")
    if high <= low:
        raise ConversionError(f"{context.where} high_freq_factor={high} is not above low_freq_factor={low}")
    return {
        "factor": context.number("factor"),
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": context.original_max_position_embeddings(),
    }


def _yarn(context, canonical):
    params, original = context.params, context.original_max_position_embeddings()
    factor = context.factor_or_ratio(original)  # required, but an explicit null means the ratio
    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")
        if mscale and mscale_all_dim:  # both must be set and non-zero, or neither counts
            attention_factor = _yarn_mscale(factor, _positive(mscale, "mscale", context.where)) / _yarn_mscale(
                factor, _positive(mscale_all_dim, "mscale_all_dim", context.where)
            )
        else:
            attention_factor = _yarn_mscale(factor, 1.0)
    truncate = params.get("truncate", True)
    if not isinstance(truncate, bool):
        raise ConversionError(f"{context.where} truncate={truncate!r} is not true or false")
    if context.per_layer and not truncate:
        # transformers reads truncate from the top level, never from a per-layer-type dict.
        raise ConversionError(f"{context.where} truncate=false is not honoured by transformers for per-layer rope")
    return {
        "factor": factor,
        "original_max_position_embeddings": original,
        "attention_factor": _positive(attention_factor, "attention_factor", context.where),
        # transformers treats 0 like absent here (``or``), so do we.
        "beta_fast": _number(params.get("beta_fast") or 32, "beta_fast", context.where),
        "beta_slow": _number(params.get("beta_slow") or 1, "beta_slow", context.where),
        "truncate": truncate,
    }


def _yarn_mscale(factor, mscale):
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _longrope(context, canonical):
    original = context.original_max_position_embeddings()
    rotary_dim = context.rotary_dim(canonical.get("partial_rotary_factor", 1.0))
    factor = context.factor_or_ratio(original)
    attention_factor = context.params.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    return {
        "short_factor": context.factor_list("short_factor", rotary_dim),
        "long_factor": context.factor_list("long_factor", rotary_dim),
        "original_max_position_embeddings": original,
        "attention_factor": _positive(attention_factor, "attention_factor", context.where),
    }


_TYPE_PARAMETERS = {
    "default": _default,
    "linear": _linear,
    "dynamic": _dynamic,
    "llama3": _llama3,
    "yarn": _yarn,
    "longrope": _longrope,
}


def _dict(value, where):
    if not isinstance(value, dict):
        raise ConversionError(f"{where} must be a dict, not {value!r}")
    return dict(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value, key, where):
    if not _is_number(value):
        raise ConversionError(f"{where} {key}={value!r} is not a number")
    return float(value)


def _positive(value, key, where):
    value = _number(value, key, where)
    if value <= 0:
        raise ConversionError(f"{where} {key}={value!r} is not positive")
    return value


def _count(value, key, where):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f"{where} {key}={value!r} is not a positive integer")
    return value
