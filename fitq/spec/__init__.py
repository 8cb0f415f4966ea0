"""The job spec: pydantic models of what a user may ask for, and the pure-Python check of it."""

from fitq.spec.compile import CompileSpec
from fitq.spec.data import DatasetRef, DataSpec, InlineArrays, StoredData
from fitq.spec.inference import ModelSummary, check_data_shapes, summarize
from fitq.spec.job import SPEC_VERSION, FitSpec, JobCreate, JobSpec, ModelSpec, StoredDataSpec

__all__ = [
    "SPEC_VERSION",
    "CompileSpec",
    "DataSpec",
    "DatasetRef",
    "FitSpec",
    "InlineArrays",
    "JobCreate",
    "JobSpec",
    "ModelSpec",
    "ModelSummary",
    "StoredData",
    "StoredDataSpec",
    "check_data_shapes",
    "summarize",
]
