"""Process set-up for flows run from volrisk: Prefect home inside the project, analytics off.

Imported by ``flows/__init__.py`` so it runs before Prefect reads its settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.config import get_settings


def configure_environment() -> None:
    """Point Prefect at ``<VOLRISK_HOME>/prefect`` unless the user set ``PREFECT_HOME``."""
    settings = get_settings()
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    # Prefect's SQLite database cannot be created in a folder that does not exist.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def check_prefect_api(timeout: float = 2.0) -> None:
    """Fail fast, with advice, when a configured Prefect API (``PREFECT_API_URL``) does not answer.

    With no API URL, flows run in-process on an ephemeral server and there is nothing to probe.
    Otherwise one ``GET <url>/health`` with a short timeout tells a dead or unreachable server apart
    from a slow start, instead of every flow hanging on its own connection attempts.

    Raises
    ------
    ConfigError
        The API did not answer within ``timeout`` seconds, or answered with an error status.
    """
    import httpx
    from prefect.settings import get_current_settings

    from core.errors import ConfigError

    url = get_current_settings().api.url
    if not url:
        return
    try:
        response = httpx.get(f"{str(url).rstrip('/')}/health", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"the Prefect API at {url} is unreachable ({type(exc).__name__}: {exc}). Start it "
            "(`prefect server start`), or unset PREFECT_API_URL to run the flow in-process"
        ) from None
