"""``python -m switchboard``: the ``switchboard`` command (:mod:`switchboard.cli`)."""

from switchboard.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
