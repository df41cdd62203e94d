"""The Prefect layer: flows that chain the stage tasks, and the ``volrisk`` CLI."""

from flows.runtime import configure_environment

configure_environment()
