"""The ``etl`` console script: ``python manage.py`` with the settings preset.

Command names use hyphens on the command line (``etl run-once``); Django's modules use
underscores, so the first argument is translated.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    if len(args) > 1 and not args[1].startswith("-"):
        args[1] = args[1].replace("-", "_")
    execute_from_command_line(args)
