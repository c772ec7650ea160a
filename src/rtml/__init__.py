"""rtml: real-time machine learning from one set of definitions."""

from rtml.definitions import (
    Aggregation,
    Choice,
    Entity,
    FeatureView,
    FloatParam,
    IntParam,
    Label,
    Model,
    OnDemandFeature,
    Source,
)
from rtml.errors import DefinitionError, RtmlError
from rtml.producer import Producer

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "Choice",
    "DefinitionError",
    "Entity",
    "FeatureView",
    "FloatParam",
    "IntParam",
    "Label",
    "Model",
    "OnDemandFeature",
    "Producer",
    "RtmlError",
    "Source",
    "__version__",
]
