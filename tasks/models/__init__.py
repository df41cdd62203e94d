"""Forecasting models: one module per family, each registering its models (see ``base.get_model``).

The built-in models and their modules are listed in :mod:`tasks.model_catalog`; a model's module is
imported the first time the model is asked for.
"""
