"""Command line: python -m src.main [command] [--config PATH]. See --help; the commands live in src/cli."""
import gc
import sys

from src.cli.main import main

if __name__ == "__main__":
    code = main()
    # The interpreter's last garbage collection walks every object of the ~3,000 modules imported (ccxt's alone
    # are most): 1.5 s on an idle machine, 7 s and more on a busy one, where a stop has 15 s in all. The process
    # ends here, so nothing needs collecting: the objects are frozen out of it (atexit handlers still run).
    gc.freeze()
    sys.exit(code)
