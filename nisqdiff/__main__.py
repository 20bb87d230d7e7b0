"""``python -m nisqdiff`` (what ``torchrun ... -m nisqdiff train --distributed`` starts): the CLI."""

from .cli import app

app(prog_name="nisqdiff")
