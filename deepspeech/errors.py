"""Exception types raised where bad input enters: files, text, manifests, configs.

Everything a user can fix derives from `DeepSpeechError`, so the CLI can turn it into one line
on stderr (exit code 2) and the server into a 4xx, while real bugs still show a traceback.
"""


class DeepSpeechError(Exception):
    """A problem the user can fix; the message names the file or value and the fix."""


class AudioFormatError(DeepSpeechError):
    """Audio that cannot be decoded, or is not in the format a caller requires."""


class AlphabetError(DeepSpeechError):
    """Text with a character the alphabet cannot represent, or a malformed alphabet file."""


class ManifestError(DeepSpeechError):
    """A manifest CSV that is malformed or points at missing or mismatched audio."""


class STMFormatError(DeepSpeechError):
    """A line of an STM transcript file that does not follow the NIST STM format."""


class ConfigError(DeepSpeechError):
    """A configuration file or option that is unknown or out of range."""


class CorpusError(DeepSpeechError):
    """A corpus source folder that does not look like the corpus it claims to be."""


class ExportError(DeepSpeechError):
    """An ONNX export that cannot be made or that disagrees with the trained Keras model."""


class ModelLoadError(DeepSpeechError):
    """An ONNX model (file or registry URI) that cannot be found, opened or understood."""


class AudioTooLongError(DeepSpeechError):
    """Audio longer than a configured limit (the server answers 413)."""


class LanguageModelError(DeepSpeechError):
    """An n-gram language model that cannot be built, read or loaded, or text too poor for one."""
