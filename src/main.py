"""Command line: python -m src.main [command] [--config PATH]. See --help; the commands live in src/cli."""
import sys

from src.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
