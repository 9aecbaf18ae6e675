"""Dependencies as Annotated aliases. Clients are created in the app's lifespan, never at import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.inference import TritonModel
from service.queue.streams import JobQueue
from service.queue.waiter import ResultWaiter


@dataclass
class Services:
    settings: Settings
    queue: JobQueue
    waiter: ResultWaiter
    model: TritonModel


async def get_services(request: Request) -> Services:
    # async although it awaits nothing: FastAPI runs a plain def dependency in a worker thread,
    # a thread hop per request for a dict lookup.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
