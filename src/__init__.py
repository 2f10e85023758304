"""crypto-ml-predictor: hourly calibrated probabilities of crypto moves."""
import os

# OpenMP's worker threads (xgboost's) spin-wait between parallel regions by default. Beside other busy
# processes on a small machine a spinning thread holds a core its descheduled sibling needs, and a fit runs
# up to 10x slower; waiting passively keeps the slowdown in proportion to the load (bench/threads.py).
# Set before any library loads libgomp; a value the operator chose wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
