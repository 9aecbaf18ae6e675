"""The HTTP gateway: FastAPI app factory, routes, dependencies, error mapping."""
