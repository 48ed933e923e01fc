"""``python -m etl`` is the ``etl`` console script."""

from etl.cli import main

main()
