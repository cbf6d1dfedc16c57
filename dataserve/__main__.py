"""``python -m dataserve``: the ``dataserve`` command."""

from ._cli import main

# Worker processes import this module again under another name: only the command itself runs main().
if __name__ == "__main__":
    raise SystemExit(main())
