"""The error hierarchy. Every user-facing failure is a ``SesameError`` whose
message names the problem and the fix."""


class SesameError(Exception):
    """Base class: a problem the user can fix; the CLI prints it on one line and exits 2."""


class ConfigError(SesameError):
    """A config key, value or combination is invalid."""


class CheckpointError(SesameError):
    """A checkpoint or model directory is missing, incomplete, corrupt or mismatched."""


class ShapeError(SesameError):
    """A tensor has the wrong shape, or an id is out of range."""


class DataError(SesameError):
    """Input text or a corpus cannot be read as asked."""


class TokenizerError(SesameError):
    """A tokenizer cannot be trained, loaded or applied."""


class ConversionError(SesameError):
    """A checkpoint cannot be converted to or from another format."""


class OutputError(SesameError):
    """An output cannot be written: the target is taken, not writable, locked or the disk is full."""
