"""nisqdiff: quantum-hybrid diffusion U-Nets (De Falco et al. 2024) from simulator to NISQ hardware."""

__version__ = "0.1.0"
