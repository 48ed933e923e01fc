"""shardetl: a small-footprint ETL cluster on async Django."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("shardetl")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
