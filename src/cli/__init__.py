"""The command line (python -m src.main): `parser` declares the commands, one module per group runs them
(`data`, `models`, `live`, `service`), and `main` ties them together with the stop signals."""
