"""The composition root and Python front door (see composition.py); the services live beside it."""

from facetrace.engine.actors import cli_actor
from facetrace.engine.clustering import ClusteredFace, ClusteredFaces, Clusters
from facetrace.engine.composition import (
    Engine,
    add_model_pack,
    list_model_packs,
    open_engine,
    verify_model_pack,
)
from facetrace.engine.maintenance import ConsistencyReport, IndexMaintenance

__all__ = [
    "ClusteredFace",
    "ClusteredFaces",
    "Clusters",
    "ConsistencyReport",
    "Engine",
    "IndexMaintenance",
    "add_model_pack",
    "cli_actor",
    "list_model_packs",
    "open_engine",
    "verify_model_pack",
]
