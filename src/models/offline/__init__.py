"""Research and retraining: walk-forward training (`training`), the daily champion/challenger retrain
(`retraining`) and the walk-forward backtest (`backtest`)."""
