"""Property-based tests (hypothesis) of the device-setting grammar and the numeric options."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nisqdiff.calibration import MAX_NOISE_SCALE, check_noise_scale
from nisqdiff.devices import parse_setting
from nisqdiff.errors import NisqdiffError, UsageError
from nisqdiff.models import UNet
from nisqdiff.pipeline import DiffusionPipeline

CALIBRATIONS = ["fake_sherbrooke", "fake_torino", "fake_kyiv"]


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["emulator", "aer-noisy"]), cal=st.sampled_from(CALIBRATIONS),
       scale=st.floats(0, 10, allow_nan=False).map(lambda x: round(x, 3)), shots=st.none() | st.integers(2, 10**6),
       readout=st.booleans(), zne=st.booleans())  # fmt: skip
def test_every_well_formed_setting_parses_to_its_overrides(kind, cal, scale, shots, readout, zne):
    zne = zne and kind == "emulator"
    text = f"{kind}:{cal}@{scale}" + (f"/{shots}" if shots else "") + ("+readout" if readout else "") + ("+zne" if zne else "")
    spec = parse_setting(text, 512)
    assert spec.profile == kind and spec.label == text
    assert spec.overrides["calibration"] == cal and spec.overrides["noise_scale"] == float(scale)
    assert spec.overrides["shots"] == (shots or 512)
    assert spec.overrides.get("mitigate_readout", False) == readout and ("zne" in spec.overrides) == zne


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="ascii"), max_size=40))
def test_any_string_parses_or_is_a_one_line_user_error(text):
    try:
        spec = parse_setting(text)
    except NisqdiffError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert spec.options()["kind"] in ("noiseless", "depolarized", "shots", "emulator", "aer-noisy")


@pytest.fixture(scope="module")
def pipe():
    return DiffusionPipeline(UNet("classical"))


@settings(max_examples=100, deadline=None)
@given(eta=st.floats(allow_nan=True, allow_infinity=True), seed=st.integers(-(2**70), 2**70),
       num=st.integers(-5, 10), steps=st.integers(-5, 2000))  # fmt: skip
def test_sampling_options_are_accepted_exactly_in_their_documented_ranges(pipe, eta, seed, num, steps):
    ok = math.isfinite(eta) and 0 <= eta <= 1 and 0 <= seed < 2**40 and num >= 1 and 1 <= steps <= 1000
    try:
        pipe.check(num, "ddim", steps, eta, 4, seed)
    except UsageError:
        assert not ok
    else:
        assert ok


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_noise_scales_are_accepted_exactly_in_their_documented_range(scale):
    ok = math.isfinite(scale) and 0 <= scale <= MAX_NOISE_SCALE
    try:
        assert check_noise_scale(scale) == scale
    except UsageError:
        assert not ok
    else:
        assert ok
