"""`python -m aifc bench ...` / `aifc sim ...`: the aifc program, from the installed package."""
import sys

from . import _core


def main() -> int:
    return _core.cli_main(["aifc", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
