"""`--help` for the bench scripts (bench/usage.py, not a benchmark): each one's docstring is its usage.

    from usage import answer_help  # bench/ is on sys.path when a script runs as `python bench/NAME.py`
    answer_help(__doc__)
"""

from __future__ import annotations

import sys


def answer_help(doc: str | None) -> None:
    """Print DOC and exit 0 when the script was asked for -h or --help (before it imports or starts
    anything)."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print((doc or "").strip())
        raise SystemExit(0)


if __name__ == "__main__":
    answer_help(__doc__)
    print(__doc__.strip())
