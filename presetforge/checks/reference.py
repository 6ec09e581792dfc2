"""The parity check's reference: transformers in float32 with eager attention, whole or a block at a time.

``whole`` is ``from_pretrained``, transformers' own loading. ``streamed``
builds the same model with its parameters on the ``meta`` device (no memory)
and its buffers (rotary frequencies, position ids, embedding scales) computed
on the CPU by transformers' own initialization, as ``from_pretrained`` does
for the buffers a checkpoint does not hold. Its forward pass is transformers'
own, so masks, rotary tables, scalings and the final soft-cap are built as
transformers builds them; only the parameters are materialised differently:
each *unit* (a stage module of the converter, or any other module owning
parameters: embeddings, final norm, LM head) reads its tensors from the
checkpoint just before it runs and drops them right after. Peak memory is one
block plus the largest tensor, whatever the depth of the model.
"""

import contextlib

import numpy as np

from presetforge.converters.checkpoint import Checkpoint, Scratch
from presetforge.errors import CheckError


def _auto_class(language_model):
    import transformers

    transformers.utils.logging.disable_progress_bar()
    return transformers.AutoModelForCausalLM if language_model else transformers.AutoModel


def whole(reference_dir, language_model):
    """The reference model loaded whole by transformers."""
    import torch

    model = _auto_class(language_model).from_pretrained(
        reference_dir, attn_implementation="eager", dtype=torch.float32
    )
    return model.eval()


class Streamed:
    """A transformers model whose parameters live in the checkpoint until a unit runs.

    Use as a context manager around forward passes: ``with Streamed(dir, lm) as s:
    s.stream(stage_modules); s.model(...)``.
    """

    def __init__(self, reference_dir, language_model):
        import torch
        import transformers

        self._checkpoint = Checkpoint(reference_dir)
        try:
            config = transformers.AutoConfig.from_pretrained(reference_dir)
            with torch.device("meta"):
                model = _auto_class(language_model).from_config(
                    config, attn_implementation="eager", dtype=torch.float32
                )
            self.model = model.eval()
            self._buffers_on_cpu()
            self._keys = self._checkpoint_keys()
        except BaseException:
            self._checkpoint.close()
            raise
        self._scratch = Scratch()
        self._hooks = []

    def _buffers_on_cpu(self):
        """Every buffer on the CPU with the value transformers gives it: empty, then its initialization
        (``initialize_weights`` skips nothing here and touches the ``meta`` parameters without cost).
        No family converted here keeps a buffer in its checkpoint; the streamed check's agreement with
        ``from_pretrained`` on every family (tests/checks/test_streamed_parity.py) holds that to account."""
        import torch

        for module in self.model.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = torch.empty_like(buffer, device="cpu")
        self.model.initialize_weights()

    def _checkpoint_keys(self):
        """Parameter name → checkpoint tensor name, for every parameter of the model.

        Checkpoints are saved from a model with or without the task head, so a
        name is looked up as is, under the base model's prefix, and without it;
        a tied parameter (an LM head sharing the token embedding) takes its
        partner's tensor when the checkpoint stores only one of them. A parameter
        found nowhere maps to ``None`` and runs as zeros: ``from_pretrained``
        would initialise it at random (RoBERTa's pooler under a masked-LM head),
        and no compared stage can depend on it, since the converter refuses a
        checkpoint that lacks a tensor the preset needs.
        """
        stored = self._checkpoint.tensors
        prefix = self.model.base_model_prefix + "."

        def find(name):
            for candidate in (name, prefix + name, name.removeprefix(prefix)):
                if candidate in stored:
                    return candidate
            return None

        aliases = {}
        for name, parameter in self.model.named_parameters(remove_duplicate=False):
            aliases.setdefault(id(parameter), []).append(name)
        keys = {}
        for names in aliases.values():
            found = [key for key in map(find, names) if key is not None]
            for name in names:
                keys[name] = find(name) or (found[0] if found else None)
        return keys

    def stream(self, stage_modules):
        """Hook every unit so its parameters exist only while it runs.

        Units are the stage modules (a block with all its parameters) and every
        other module that owns parameters directly (embeddings, norms, heads).
        """
        stages = {id(m) for m in stage_modules}
        units = {}
        for owner_name, owner in self.model.named_modules():
            direct = [(n, p) for n, p in owner._parameters.items() if p is not None]
            if not direct:
                continue
            unit = next((m for m in _ancestors(self.model, owner_name) if id(m) in stages), owner)
            for name, _ in direct:
                full = f"{owner_name}.{name}" if owner_name else name
                units.setdefault(id(unit), (unit, []))[1].append((owner, name, full))
        for unit, parameters in units.values():
            self._hooks.append(unit.register_forward_pre_hook(lambda m, a, p=parameters: self._materialise(p)))
            self._hooks.append(unit.register_forward_hook(lambda m, a, o, p=parameters: self._release(p)))

    def _materialise(self, parameters):
        import torch

        for owner, name, full in parameters:
            key = self._keys[full]
            if key is None:  # see _checkpoint_keys: a module no compared stage depends on
                owner._parameters[name] = torch.nn.Parameter(
                    torch.zeros(owner._parameters[name].shape), requires_grad=False
                )
                continue
            array = self._checkpoint.read_into(key, self._scratch)
            if array.dtype.name == "bfloat16":  # torch widens it faster than numpy, and on every core
                tensor = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).to(torch.float32)
            else:
                tensor = torch.from_numpy(np.array(array, dtype=np.float32))
            expected = tuple(owner._parameters[name].shape)
            if tuple(tensor.shape) != expected:
                raise CheckError(f"reference tensor '{key}' has shape {tuple(tensor.shape)}; '{full}' needs {expected}")
            owner._parameters[name] = torch.nn.Parameter(tensor, requires_grad=False)
            self._checkpoint.release(key)

    @staticmethod
    def _release(parameters):
        import torch

        for owner, name, _ in parameters:
            value = owner._parameters[name]
            owner._parameters[name] = torch.nn.Parameter(torch.empty_like(value, device="meta"), requires_grad=False)

    def close(self):
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._checkpoint.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ancestors(model, name):
    """The modules containing the module called ``name``, outermost first, itself last."""
    parts = name.split(".") if name else []
    return [model.get_submodule(".".join(parts[:i])) for i in range(len(parts) + 1)]


@contextlib.contextmanager
def opened(reference_dir, language_model, streamed):
    """The reference model, whole or ``Streamed``; yields ``(model, stream)`` where ``stream(stage_modules)``
    readies the forward passes (it hooks the units when streamed, and does nothing when whole)."""
    if not streamed:
        yield whole(reference_dir, language_model), lambda stage_modules: None
        return
    with Streamed(reference_dir, language_model) as reference:
        yield reference.model, reference.stream
