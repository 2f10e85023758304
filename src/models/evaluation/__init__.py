"""How good a forecast is: the metrics of both tasks (`direction_metrics`, `time_metrics`), the one scoring of
stored forecast rows that backtest and live performance share (`scoring`), and the champion rule with its
skill intervals (`selection`). Pure maths over forecasts and outcomes: nothing here fits or stores a model."""
