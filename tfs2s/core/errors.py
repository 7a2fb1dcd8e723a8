"""tfs2s's own error types: one base class, so the command line can tell a user's mistake from a bug.

``tfs2s.cli`` prints any ``Tfs2sError`` as a one-line ``tfs2s: error: ...`` with exit status 2; every other
exception shows its traceback. Each type also derives from the built-in type it refines (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so callers catching those keep working.
"""

from __future__ import annotations


class Tfs2sError(Exception):
    """Base class of the errors a user can cause and fix: bad config, missing data or run, bad input."""


class ConfigError(Tfs2sError, ValueError):
    """An invalid configuration (unknown key, bad value, bad combination)."""


class ConfigNotFoundError(ConfigError, FileNotFoundError):
    """A config file that does not exist and is not the name of a shipped config."""


class DataError(Tfs2sError, ValueError):
    """Corpus files are missing or malformed."""


class ImageDataError(DataError):
    """An image is missing, undecodable or not of the configured size."""


class SeriesError(DataError):
    """A series file or window is malformed (missing values, wrong shape)."""


class InputError(Tfs2sError, ValueError):
    """A request the model cannot answer as asked (unknown decoding strategy or option, wrong kind of run)."""


class RunNotFoundError(Tfs2sError, FileNotFoundError):
    """A run folder or export is missing, or lacks a file it needs (names what is missing)."""


class ExportError(Tfs2sError, ValueError):
    """The export cannot be written (existing version without ``overwrite``, bad name or version, no tf2onnx)."""


class DistributeError(Tfs2sError, RuntimeError):
    """A distributed run cannot start or go on (bad ``TF_CONFIG``, a worker that does not answer)."""
