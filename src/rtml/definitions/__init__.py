"""The user-facing declarative API. Definitions hold configuration only and do no I/O."""

from rtml.definitions.base import Definition
from rtml.definitions.entity import Entity
from rtml.definitions.feature_view import Aggregation, Feature, FeatureRef, FeatureView
from rtml.definitions.label import Label
from rtml.definitions.model import Choice, FloatParam, IntParam, Model
from rtml.definitions.on_demand import OnDemandFeature
from rtml.definitions.source import Source

__all__ = [
    "Aggregation",
    "Choice",
    "Definition",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureView",
    "FloatParam",
    "IntParam",
    "Label",
    "Model",
    "OnDemandFeature",
    "Source",
]
