"""The hubs by handle: which client a parsed handle or a publish target belongs to.

Each hub has its own module, the only one that talks to it, through its real client: ``hf``
(``huggingface_hub``) and ``kaggle`` (``kagglehub``/``kagglesdk``); ``transfers`` holds what
both share (retries, telling a transient failure from a refusal).
"""

from presetforge.errors import HandleError
from presetforge.registry import hf, kaggle


def _client(target):
    """The hub module of ``target``: ``"hf"``/``"kaggle"``, a handle string or a parsed handle."""
    if isinstance(target, str):
        if target == "hf" or target.startswith("hf://"):
            return hf
        if target == "kaggle" or target.startswith("kaggle://"):
            return kaggle
    elif hasattr(target, "repo_id"):
        return hf
    elif hasattr(target, "variation"):
        return kaggle
    raise HandleError(f"not a hub target: {target!r}; expected 'hf', 'kaggle', hf://… or kaggle://…")


def credentials_problem(target):
    """Why publishing to ``target`` would fail for lack of credentials, or ``None``.

    Checked before any work so a publish run does not convert and verify a preset only to stop
    at the upload.
    """
    return _client(target).credentials_problem()


def download(handle):
    """The local directory of a parsed ``HFHandle`` or ``KaggleHandle`` (see ``handles.parse``)."""
    if _client(handle) is hf:
        return hf.download(handle.repo_id, handle.revision)
    return kaggle.download(handle.owner, handle.model, handle.framework, handle.variation, handle.version)
