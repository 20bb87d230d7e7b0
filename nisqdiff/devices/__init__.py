"""Devices that execute the model's circuits, their profiles, and the adapter that puts one behind a model.

See :mod:`.base` (the interface, :class:`DeviceExecutor`), :mod:`.simulated` (noiseless, shots, aer,
aer-noisy), :mod:`.emulator` (the fast noisy emulator), :mod:`.ibm` (IBM Quantum and local testing mode, run manifests) and :mod:`.profiles`
(the ``devices/`` profiles and :func:`make_device`).
"""

from .base import Device, DeviceExecutor, DeviceResult, check_shots, mitigate_readout, shot_stderr
from .emulator import EmulatorDevice
from .ibm import DeviceError, IBMDevice, RunManifest
from .profiles import list_profiles, load_profile, make_device
from .simulated import AerDevice, AerNoisyDevice, NoiselessDevice, ShotsDevice

__all__ = [
    "AerDevice", "AerNoisyDevice", "Device", "DeviceError", "DeviceExecutor", "DeviceResult", "EmulatorDevice",
    "IBMDevice",
    "NoiselessDevice", "RunManifest", "ShotsDevice", "check_shots", "list_profiles", "load_profile", "make_device",
    "mitigate_readout", "shot_stderr",
]  # fmt: skip
