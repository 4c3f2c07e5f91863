"""A PostgreSQL of our own, for running without any DATABASE_URL."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any


__all__ = ["EmbeddedPostgres"]

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A real PostgreSQL server from the ``pgserver`` package.

    Its data lives under ``data_dir/pgdata`` and survives restarts. It
    listens on a Unix socket only, never on a network port. It is stopped
    when the last process using it exits.
    """

    def __init__(self, data_dir: Path) -> None:
        # Resolved so that a change of working directory cannot move it.
        self.pgdata = (data_dir / "pgdata").resolve()
        # The pgserver handle; None until started.
        self._server: Any = None

    async def start(self) -> str:
        """Start (or join) the server; returns its connection URL."""
        # pgserver blocks while initdb and pg_ctl run; keep the loop free.
        return await asyncio.to_thread(self._start)

    def _start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (as under
            # sudo or in containers) and falls back to /tmp, which is fine.
            warnings.simplefilter("ignore")
            from pgserver import get_server  # type: ignore[attr-defined]

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        url: str = self._server.get_uri()
        logger.info(
            "no DATABASE_URL: using embedded PostgreSQL",
            extra={"pgdata": str(self.pgdata)},
        )
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
