"""The event collector: Segment's HTTP Tracking API in front of `raw.events` (`pulse serve`)."""

from pulse.collector.app import create_app
from pulse.collector.writer import GroupCommitWriter, Unavailable

__all__ = ["GroupCommitWriter", "Unavailable", "create_app", "serve"]


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "warning") -> None:
    """Run the collector with uvicorn until interrupted. Settings come from the environment."""
    import uvicorn

    uvicorn.run(
        "pulse.collector.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=15,
    )
