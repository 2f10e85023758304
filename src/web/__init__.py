"""The track record for people: server-rendered pages (/, /record, /forecasts, /models), the forecasts as CSV
and JSON, served by the daemon's HTTP server or alone by `python -m src.main web`. Read-only."""
