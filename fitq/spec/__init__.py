"""The job spec: pydantic models of what a user may ask for, and the pure-Python check of it."""

from fitq.spec.compile import CompileSpec
from fitq.spec.data import DatasetRef, DataSpec, InlineArrays, StoredData, value_range
from fitq.spec.job import (
    SPEC_VERSION,
    EarlyStopping,
    FitSpec,
    JobCreate,
    JobSpec,
    ModelSpec,
    ResourcesSpec,
    StoredDataSpec,
)
from fitq.spec.validation import (
    EstimatedWork,
    ModelSummary,
    SplitData,
    Validation,
    ValueRange,
    check_data,
    split_rows,
    summarize,
    validate_job,
)

__all__ = [
    "SPEC_VERSION",
    "CompileSpec",
    "DataSpec",
    "DatasetRef",
    "EarlyStopping",
    "EstimatedWork",
    "FitSpec",
    "InlineArrays",
    "JobCreate",
    "JobSpec",
    "ModelSpec",
    "ModelSummary",
    "ResourcesSpec",
    "SplitData",
    "StoredData",
    "StoredDataSpec",
    "Validation",
    "ValueRange",
    "check_data",
    "split_rows",
    "summarize",
    "validate_job",
    "value_range",
]
