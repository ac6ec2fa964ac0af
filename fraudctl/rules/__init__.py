"""Rules beside the model: a rules file, its condition language, and its backtest."""
