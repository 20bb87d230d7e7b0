"""Devices that execute the model's circuits, their profiles and the one factory that builds them.

See :mod:`.base` (the device base class of the executor contract), :mod:`.simulated` (depolarized,
shots, aer, aer-noisy), :mod:`.emulator` (the fast noisy emulator), :mod:`.ibm` (IBM Quantum and local
testing mode) with :mod:`.manifest` (its resumable run record), :mod:`.profiles` (the ``devices/``
profiles) and :mod:`.factory` (:func:`make_device` and the study's setting strings). ``noiseless`` is
the exact simulator, :class:`nisqdiff.circuits.ExactSimulator`.
"""

from .base import Device, check_shots, mitigate_readout, shot_stderr
from .emulator import EmulatorDevice
from .factory import DeviceSpec, make_device, parse_setting, parse_settings
from .ibm import IBMDevice
from .manifest import RunManifest
from .profiles import list_profiles, load_profile
from .simulated import AerDevice, AerNoisyDevice, DepolarizedDevice, ShotsDevice

__all__ = [
    "AerDevice", "AerNoisyDevice", "DepolarizedDevice", "Device", "DeviceSpec", "EmulatorDevice", "IBMDevice",
    "RunManifest", "ShotsDevice", "check_shots", "list_profiles", "load_profile", "make_device", "mitigate_readout",
    "parse_setting", "parse_settings", "shot_stderr",
]  # fmt: skip
