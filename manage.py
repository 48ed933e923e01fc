#!/usr/bin/env python
"""Django's command-line utility; the same as the ``etl`` console script."""

from etl.cli import main

if __name__ == "__main__":
    main()
