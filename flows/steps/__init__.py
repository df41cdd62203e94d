"""Stage doors: the Prefect ``@task`` entry points, one thin module per stage.

Each door takes partition keys (symbol, window, model, fold) and a warehouse path, reads through
:class:`warehouse.resource.Warehouse`, calls the pure functions of its ``tasks/`` module and writes
back. Retry and cache policy come from :mod:`flows.orchestration`. ``tasks/`` itself imports neither
Prefect nor ``warehouse``; see ``docs/design.md``.
"""
