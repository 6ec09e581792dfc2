"""Pieces shared by the stand-in's server and its two hub APIs."""

HF_TOKEN = "hf_standin_token"
KAGGLE_USERNAME = "standin"
KAGGLE_KEY = "standin-key"
KAGGLE_API_TOKEN = "KGAT_standin_token"


class Dropped(Exception):
    """Raised inside a handler after it cut the connection on purpose."""


class HttpError(Exception):
    """An error answer: status, JSON body, extra headers."""

    def __init__(self, status, body, headers=None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}
