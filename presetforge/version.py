"""The package version, kept apart so metadata can be read without importing Keras."""

__version__ = "0.1.0"
