"""How the command line reports errors: users' mistakes in one line, bugs as bugs.

Users' mistakes (:class:`~nisqdiff.errors.NisqdiffError`) and operating-system errors on a named file
become one line on stderr and exit code 2 (an interrupted device run 130); any other exception is a
bug: a short message says so and where its full traceback was written, exit code 1.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _report_bug(exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to the user's cache (``$XDG_CACHE_HOME/nisqdiff/crashes``) and
    return the file's path."""
    import datetime
    import os
    import traceback

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nisqdiff" / "crashes"
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"crash-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    path.write_text("".join(traceback.format_exception(exc)))
    return path


def friendly_errors(fn):
    """Run a command: a :class:`~nisqdiff.errors.NisqdiffError` or an ``OSError`` on a file becomes one
    line and exit code 2 (an interrupted device run 130); anything else is reported as a bug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .device_runs import RunInterrupted
        from .errors import NisqdiffError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise
        except RunInterrupted as exc:
            _fail(str(exc), code=130)
        except NisqdiffError as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except OSError as exc:
            if exc.filename is None:
                path = _report_bug(exc)
                _fail(f"nisqdiff hit a bug (OSError: {exc}); the traceback is in {path}; please report it", code=1)
            _fail(f"{exc.filename}: {exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - a bug: say so, keep the traceback
            path = _report_bug(exc)
            _fail(f"nisqdiff hit a bug ({type(exc).__name__}: {exc}); the traceback is in {path}; please report it", code=1)

    return wrapper


def raise_usage(message: str) -> None:
    """Raise :class:`~nisqdiff.errors.UsageError` (one line, exit 2)."""
    from .errors import UsageError

    raise UsageError(message)
