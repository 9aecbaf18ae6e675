"""`sllen`: run the whole local stack, or one component, or enhance a photo from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from service.config import Settings, get_settings

T = TypeVar("T")


def _logging(settings: Settings) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop (as uvicorn runs the gateway): the worker's event loop hands every
    job between Redis, a codec thread and gRPC, and uvloop's loop costs less CPU per hand-off."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def cmd_run(settings: Settings, _: argparse.Namespace) -> int:
    from service.local.supervisor import Supervisor

    return _run(Supervisor(settings).run())


def cmd_gateway(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from service.api.connection import GuardedHttpToolsProtocol

    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.gateway_processes,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        http=GuardedHttpToolsProtocol,  # head deadline and size bound (connection.py)
        timeout_graceful_shutdown=int(settings.request_deadline_s),
    )
    return 0


async def _run_worker(settings: Settings) -> None:
    from prometheus_client import start_http_server

    from service.inference import TritonModel
    from service.queue.streams import open_queue
    from service.worker import Worker, default_worker_name

    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    async with open_queue(settings) as queue:
        model = TritonModel(settings)
        worker = Worker(settings, queue, model, settings.worker_name or default_worker_name())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.run()
        finally:
            await model.close()


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    _run(_run_worker(settings))
    return 0


def cmd_triton(settings: Settings, _: argparse.Namespace) -> int:
    from service.local.triton_server import launch_for

    launch = launch_for(settings)
    os.execve(launch.argv[0], launch.argv, launch.env)


def cmd_targets(settings: Settings, args: argparse.Namespace) -> int:
    from service.local import targets

    found = targets.scrape_targets(settings)
    if args.file_sd:
        print(json.dumps(targets.file_sd(found), indent=2))
    else:
        print("\n".join(targets.describe(found)))
        print(f"file_sd, written by `sllen run`: {targets.file_sd_path(settings)}")
    return 0


def cmd_enhance(settings: Settings, args: argparse.Namespace) -> int:
    from service import cli_enhance

    return cli_enhance.run(args, f"http://{settings.host}:{settings.port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sllen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start Redis, Triton, workers and the gateway locally")
    sub.add_parser("gateway", help="the HTTP gateway (uvicorn)")
    sub.add_parser("worker", help="a batching worker")
    sub.add_parser("triton", help="a local tritonserver on model_repository/")
    targets = sub.add_parser(
        "targets", help="where `run` serves /metrics: the scrape targets for Prometheus"
    )
    targets.add_argument(
        "--file-sd", action="store_true", help="print them as Prometheus file_sd JSON"
    )
    from service import cli_enhance

    cli_enhance.add_arguments(
        sub.add_parser("enhance", help="enhance a photo or a folder through a running service")
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    _logging(settings)
    commands = {
        "run": cmd_run,
        "gateway": cmd_gateway,
        "worker": cmd_worker,
        "triton": cmd_triton,
        "enhance": cmd_enhance,
        "targets": cmd_targets,
    }
    return commands[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
