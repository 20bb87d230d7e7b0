"""The run manifest of a job-based device run (IBM): every job recorded as it is submitted and finished.

``DIR/manifest.json`` holds the run's settings, the device's settings and one entry per job; the raw
measured bits of finished jobs lie beside it in ``DIR/jobs/``. Every change is written atomically at
once, so an interrupted run leaves a consistent manifest that a rerun can continue from.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..errors import DeviceError
from ..files import atomic_write_text, read_json


def now() -> str:
    """The current UTC time, ISO 8601 to the second (what manifests record)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunManifest:
    """``DIR/manifest.json`` of a device run and the saved results beside it (``DIR/jobs/``).

    Holds the run's settings (``run``), the device's settings and one entry per job: index, job id,
    status (submitted, done, failed), PUBs, rows, shots, times and the result file. Every change is
    written atomically at once, so an interrupted run leaves a consistent manifest.
    """

    FORMAT = "nisqdiff-device-run/1"

    def __init__(self, directory: str | Path, data: dict):
        self.dir, self.data = Path(directory), data

    @property
    def path(self) -> Path:
        return self.dir / "manifest.json"

    @classmethod
    def create(cls, directory: str | Path, run: dict, device: dict) -> RunManifest:
        """A new manifest in ``directory``; ``DeviceError`` if one is there already."""
        m = cls(
            directory, {"format": cls.FORMAT, "created": now(), "status": "running", "run": run, "device": device, "jobs": []}
        )
        if m.path.exists():
            raise DeviceError(f"{m.path} exists: continue that run with --resume {m.dir}, or choose another --out")
        m.dir.mkdir(parents=True, exist_ok=True)
        m.save()
        return m

    @classmethod
    def load(cls, directory: str | Path) -> RunManifest:
        """The manifest in ``directory``; ``DeviceError`` if there is none or it is not one."""
        path = Path(directory) / "manifest.json"
        if not path.is_file():
            raise DeviceError(f"no run manifest at {path}: --resume needs the --out folder of an earlier sampling run")
        return cls(directory, read_json(path, DeviceError, "device-run manifest", cls.FORMAT))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")

    def job(self, index: int) -> dict | None:
        jobs = self.data["jobs"]
        return jobs[index] if index < len(jobs) else None

    def put_job(self, entry: dict) -> None:
        jobs = self.data["jobs"]
        if entry["index"] < len(jobs):
            jobs[entry["index"]] = entry
        else:
            jobs.append(entry)
        self.save()

    def set_status(self, status: str) -> None:
        self.data["status"] = status
        self.save()

    def result_path(self, index: int) -> Path:
        return self.dir / "jobs" / f"{index:06d}.npz"
