"""Logging of the command line, as one ``logging.config.dictConfig`` dictionary.

The same dictionary configures this process and every worker process a batch starts (its
process pool or local Dask cluster), so riskopt's own logger and Dask's ``distributed``
loggers all print at the chosen level, one line each on stderr.
"""

from __future__ import annotations

import logging.config
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
"""The levels ``--log-level`` takes."""
FORMAT = "%(levelname)s %(name)s: %(message)s"
FOLLOWERS = ("riskopt", "distributed")
"""Loggers set to the chosen level: riskopt's own, and those of Dask's distributed
scheduler and workers (``distributed`` sets its own level, INFO, when it is imported)."""


def logging_config(level: str = "WARNING") -> dict[str, Any]:
    """The ``dictConfig`` dictionary for ``level``: one stderr handler on the root logger,
    and the :data:`FOLLOWERS` at ``level``, printing through it (any handler Dask gave them
    removed, so that no line is printed twice or in another format)."""
    level = level.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"level": level, "handlers": [], "propagate": True} for name in FOLLOWERS
        },
        # Other libraries warn as usual (only errors at ERROR): their debug lines are noise.
        "root": {"level": "ERROR" if level == "ERROR" else "WARNING", "handlers": ["stderr"]},
    }


def configure(config: dict[str, Any] | None) -> None:
    """Apply ``config`` (from :func:`logging_config`) in this process; ``None`` leaves the
    logging as it is. A process pool's initializer and a Dask worker plugin call this."""
    if config is not None:
        logging.config.dictConfig(config)


def worker_plugin(config: dict[str, Any]) -> Any:
    """A Dask worker plugin that applies ``config`` in each worker as it joins the cluster
    (``client.register_plugin(worker_plugin(config))``). Built here, on first use, so
    that nothing imports ``distributed`` before a batch needs it."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class LoggingPlugin(WorkerPlugin):
        """Configures a worker process's logging with the batch's ``dictConfig``."""

        name = "riskopt-logging"

        def setup(self, worker: Any) -> None:
            configure(config)

    return LoggingPlugin()
