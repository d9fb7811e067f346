import sys

from .config import ConfigError

try:
    from .main import run
except ConfigError as exc:
    sys.exit(f"{__package__}: {exc}")

run()
