"""The event collector: Segment's HTTP Tracking API in front of `raw.events` (`pulse serve`)."""

from pulse.auth import UnsafeToServe, check_safe_to_serve
from pulse.collector.app import create_app
from pulse.collector.writer import GroupCommitWriter, Unavailable

__all__ = ["GroupCommitWriter", "Unavailable", "UnsafeToServe", "check_safe_to_serve", "create_app", "serve"]


LIMIT_CONCURRENCY = 200  # connections per worker; each holds at most one 4 MB body


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "warning") -> None:
    """Run the collector with uvicorn until interrupted. Settings come from the environment.

    Raises `UnsafeToServe` (before binding) on a non-loopback address without real keys. With
    PULSE_TRIGGERS_ENABLED (the default), runs the trigger worker (`pulse triggers run`) beside it."""
    from pulse.config import get_settings

    settings = get_settings()
    check_safe_to_serve(host, settings)
    # Triggers: evaluation and firing in a worker process of their own, so requests only commit events.
    supervisor = None
    if settings.triggers_enabled:
        from pulse.triggers.service import WorkerSupervisor

        supervisor = WorkerSupervisor().start()
    try:
        _run_uvicorn(host, port, workers, log_level)
    finally:
        if supervisor is not None:
            supervisor.stop()


def _run_uvicorn(host: str, port: int, workers: int, log_level: str) -> None:
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
        # Bounded work per server: connections beyond this are answered 503 at once, idle keep-alive
        # connections are closed after a few seconds.
        limit_concurrency=LIMIT_CONCURRENCY,
        timeout_keep_alive=5,
        backlog=256,
    )
