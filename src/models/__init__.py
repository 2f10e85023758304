"""The models, by role; imports run one way, down this list:

- `evaluation/`: how good a forecast is (metrics of both tasks, the one scoring of stored forecast rows, the
  champion rule and skill intervals); pure maths over forecasts and outcomes.
- `estimators/`: what is fitted (direction and how-soon models behind one interface, the survival maths,
  datasets, the two tasks, and the work units executors run).
- `live/`: the hourly path (model registry, prediction, outcomes, daily performance).
- `offline/`: research and retraining (training, retraining, backtest); it may use `live/`'s registry,
  never the other way round.
"""
