"""The base of every spec model: unknown fields and non-finite numbers are refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitq.schema_docs import describe


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
        strict=True,
        json_schema_extra=describe,
    )

    @classmethod
    def keras_reference(cls) -> str | None:
        """The Keras class this object stands for (``keras.layers.Dense``), if any: what its
        JSON schema description points at."""
        return None


def tag_of(model: type[BaseModel]) -> str:
    """A union member's tag: the one value its ``type`` field's ``Literal`` allows."""
    return str(model.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr]
