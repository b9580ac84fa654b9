"""The four scenario workflows; the worker registers ``ALL``."""

from services.workflows.hub import HubWorkflow
from services.workflows.order import OrderWorkflow
from services.workflows.pipeline import PipelineWorkflow
from services.workflows.ticker import TickerWorkflow

ALL = [OrderWorkflow, PipelineWorkflow, HubWorkflow, TickerWorkflow]

__all__ = ["ALL", "HubWorkflow", "OrderWorkflow", "PipelineWorkflow", "TickerWorkflow"]
