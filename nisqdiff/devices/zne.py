"""Zero-noise extrapolation: <Z> measured at noise factors lambda_i >= 1, extrapolated to lambda = 0.

The extrapolators and their names follow qiskit-ibm-runtime's ``ZneOptions.extrapolator`` (0.45):

* ``linear``: least-squares line through the points (``polynomial_degree_1``);
* ``polynomial_degree_K`` (1 <= K < number of factors): least-squares polynomial of degree K;
* ``richardson``: the polynomial through all points (degree = factors - 1), Richardson's extrapolation;
* ``exponential``: f(lambda) = A exp(-lambda / tau), fitted by least squares to log|<Z>| (all points of
  one sign; where they are not, or a value is 0, the point falls back to ``linear`` and is counted).

Linear and polynomial fits are fixed linear combinations sum_i c_i <Z>(lambda_i), so their standard
error is exact: sqrt(sum_i c_i^2 se_i^2) (variance amplification sum_i c_i^2 at equal shots per
factor); the exponential's is the delta-method one, A sqrt(sum_i c_i^2 (se_i / <Z>_i)^2) with the c_i of
the log-linear fit.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..errors import UsageError

EXTRAPOLATORS = ("richardson", "linear", "exponential", "polynomial_degree_K")
DEFAULT_FACTORS = (1.0, 2.0, 3.0)


def check_factors(factors) -> tuple[float, ...]:
    """The ZNE noise factors as floats if there are at least two, all >= 1 and distinct (as
    qiskit-ibm-runtime requires), else :class:`~nisqdiff.errors.UsageError`."""
    out = tuple(float(f) for f in factors)
    if len(out) < 2:
        raise UsageError(f"ZNE needs at least two noise factors, got {list(out)}; e.g. 1,2,3")
    if any(f < 1 for f in out):
        raise UsageError(f"ZNE noise factors must be at least 1 (1 = the device's own noise), got {list(out)}")
    if len(set(out)) != len(out):
        raise UsageError(f"ZNE noise factors must be distinct, got {list(out)}")
    return out


def parse_factors(text: str | None) -> tuple[float, ...] | None:
    """``"1,2,3"`` -> (1.0, 2.0, 3.0) (None stays None), checked by :func:`check_factors`;
    :class:`~nisqdiff.errors.UsageError` for a value that is not a number."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--zne takes comma-separated noise factors such as 1,2,3, got {text!r}") from None
    return check_factors(values)


def degree(extrapolator: str, n_factors: int) -> int | None:
    """The polynomial degree of ``extrapolator`` for ``n_factors`` points (None for exponential);
    :class:`~nisqdiff.errors.UsageError` for an unknown name or a degree the points cannot fit."""
    if extrapolator == "exponential":
        return None
    m = re.fullmatch(r"polynomial_degree_([1-7])", extrapolator)
    deg = {"linear": 1, "richardson": n_factors - 1}.get(extrapolator) or (int(m.group(1)) if m else None)
    if deg is None:
        raise UsageError(f"unknown ZNE extrapolator '{extrapolator}'; valid: {', '.join(EXTRAPOLATORS)} (K = 1..7)")
    if deg >= n_factors:
        raise UsageError(f"ZNE extrapolator {extrapolator} needs at least {deg + 1} noise factors, got {n_factors}")
    return deg


def fit_weights(factors: tuple[float, ...], deg: int) -> np.ndarray:
    """c (n,) with sum_i c_i y_i the value at 0 of the least-squares polynomial of degree ``deg``
    through (factors_i, y_i) (for deg = n - 1, Richardson's c_i = prod_{j != i} x_j / (x_j - x_i))."""
    x = np.asarray(factors, dtype=np.float64)
    vander = np.vander(x, deg + 1, increasing=True)
    return np.linalg.pinv(vander)[0]


def extrapolate(
    factors: tuple[float, ...], evs: list[torch.Tensor], stds: list[torch.Tensor], extrapolator: str = "richardson"
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Zero-noise <Z> from ``evs[i]`` (any shape) measured at ``factors[i]``, with standard errors
    ``stds[i]``. Returns (values clamped to [-1, 1], standard errors, number of entries where the
    exponential fell back to linear). Raises UsageError for bad factors or extrapolator."""
    factors = check_factors(factors)
    deg = degree(extrapolator, len(factors))
    y, s = torch.stack([e.double() for e in evs]), torch.stack([e.double() for e in stds])
    lin = torch.as_tensor(fit_weights(factors, 1 if deg is None else deg), dtype=torch.float64)
    shape = (-1,) + (1,) * (y.dim() - 1)
    value = (lin.view(shape) * y).sum(0)
    se = ((lin.view(shape) * s).square().sum(0)).sqrt()
    fallbacks = 0
    if deg is None:
        ok = ((y > 0).all(0) | (y < 0).all(0)) & (y.abs() > 0).all(0)
        logw = torch.as_tensor(fit_weights(factors, 1), dtype=torch.float64).view(shape)
        sign = y[0].sign()
        amp = (logw * y.abs().clamp_min(1e-300).log()).sum(0).exp()
        amp_se = amp * ((logw * s / y.abs().clamp_min(1e-300)).square().sum(0)).sqrt()
        value = torch.where(ok, sign * amp, value)
        se = torch.where(ok, amp_se, se)
        fallbacks = int((~ok).sum())
    return value.clamp(-1, 1), se, fallbacks

