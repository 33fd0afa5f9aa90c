"""`python -m pgask` runs the CLI."""

from .cli import app

app()
