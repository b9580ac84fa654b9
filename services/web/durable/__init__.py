"""The Durable Streams read protocol for every workflow stream the dashboard serves."""

from services.web.durable.routes import router

__all__ = ["router"]
