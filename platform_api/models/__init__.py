"""SQLAlchemy 2 models; importing this package registers every table on ``Base.metadata``."""

from .base import Base
from .bundle import BundleRow, Message, Reading, Rejection, Report
from .event import Event, EventLog, History, ImportRun
from .gridmap import Feeder, Section, Substation, Transformer
from .inventory import Hub, Meter
from .provisioning import HubPolicy, PlanVersion
from .publishing import OutboxItem, ReceivedForward, Webhook, WebhookDelivery
from .receiver import Receiver
from .settings import KeyValue
from .theft import AmiReading, TheftFinding, WorkOrderRow

__all__ = [
    "Base",
    "BundleRow",
    "Message",
    "Reading",
    "Rejection",
    "Report",
    "Event",
    "EventLog",
    "History",
    "ImportRun",
    "Feeder",
    "Section",
    "Substation",
    "Transformer",
    "Hub",
    "Meter",
    "HubPolicy",
    "PlanVersion",
    "OutboxItem",
    "ReceivedForward",
    "Webhook",
    "WebhookDelivery",
    "Receiver",
    "KeyValue",
    "AmiReading",
    "TheftFinding",
    "WorkOrderRow",
]
