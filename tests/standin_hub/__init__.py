"""A protocol-level stand-in for the Hugging Face Hub and Kaggle Models, on loopback.

The real ``huggingface_hub``, ``kagglehub`` and ``kagglesdk`` clients talk to it through their
ordinary environment (see ``StandinHub.client_env`` and the ``standin_hub`` fixture), so tests
exercise the same requests the real hubs receive, without internet.
"""

from tests.standin_hub.common import HF_TOKEN, KAGGLE_API_TOKEN, KAGGLE_KEY, KAGGLE_USERNAME
from tests.standin_hub.server import Faults, StandinHub

__all__ = ["HF_TOKEN", "KAGGLE_API_TOKEN", "KAGGLE_KEY", "KAGGLE_USERNAME", "Faults", "StandinHub"]
