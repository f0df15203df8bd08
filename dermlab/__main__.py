"""``python -m dermlab``: the same as the ``dermlab`` console script."""

from dermlab.cli import main

if __name__ == "__main__":
    main()
