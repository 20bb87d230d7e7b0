"""The project's error types: what the user must fix, as opposed to bugs.

Every exception here is a user's mistake or an environment the user has to change (a bad option, a
missing or corrupt file, a device that cannot be reached). The CLI turns them into one line on stderr
and exit code 2; any other exception is a bug, and the CLI says so and where its traceback went.
"""

from __future__ import annotations


class NisqdiffError(Exception):
    """Base class of every user-facing error: one line that names the problem and the fix."""


def reason(exc: BaseException, limit: int = 160) -> str:
    """The first line of a third-party exception's message, cut to ``limit`` characters, for a one-line
    error that names the file and quotes why a library could not read it."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if not any(ch.isalpha() for ch in text) or isinstance(exc, (KeyError, IndexError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__  # a bare key or number says nothing alone
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UsageError(NisqdiffError, ValueError):
    """An option or name that is not valid (unknown architecture, device, sampler, out-of-range number)."""


class DataError(NisqdiffError):
    """A dataset that cannot be found, downloaded or read (missing, truncated, wrong checksum)."""


class CheckpointError(NisqdiffError):
    """A checkpoint or pretrained folder that is missing, unreadable, not nisqdiff's, or of the wrong architecture."""


class TrainingError(NisqdiffError):
    """A run that cannot start or continue (existing run, non-finite loss, bad transfer source)."""


class CalibrationError(UsageError):
    """Unknown calibration name or an unreadable snapshot."""


class DeviceError(UsageError):
    """A device that cannot be used as asked (credentials, backend, job failure, circuit it cannot run)."""


class StudyError(UsageError):
    """A device-setting string that does not parse, or a study folder holding another study."""
