"""Forecasting models. Importing this package registers every built-in model (see base.get_model)."""
