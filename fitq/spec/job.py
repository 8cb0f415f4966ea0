"""The JobCreate a user POSTs, mirroring the seed example's Keras calls: ``Sequential`` +
layers, ``compile(loss, optimizer, metrics)``, ``fit(batch_size, epochs, validation_data)``
and ``evaluate`` on test data."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Discriminator, Field, Tag, WithJsonSchema, model_validator

from fitq.schema_docs import described_with_examples
from fitq.spec.arguments import did_you_mean
from fitq.spec.base import SpecModel
from fitq.spec.compile import CompileSpec
from fitq.spec.data import DataSpec, LabelEncoding, StoredData
from fitq.spec.keras_config import model_from_keras_config
from fitq.spec.layers import Layer, LayerName, ShapeOf

SPEC_VERSION: Literal[1] = 1
CallbackT = TypeVar("CallbackT", bound=SpecModel)
MAX_SEED = 2**32 - 1


class GraphInput(SpecModel):
    """``keras.Input(shape, name=name)`` of a graph model."""

    name: LayerName
    shape: ShapeOf = Field(min_length=1, max_length=8)


class ModelSpec(SpecModel):
    """The layers, as a stack (``Sequential``) or a graph (Keras's functional API: ``inputs``,
    layers that name the ``inputs`` they are called on, ``outputs``); or ``{"keras_config":
    …}``, a Keras 3 ``model.to_json()`` (the string or the parsed object) translated through
    the allowlist into these layers before validation."""

    layers: list[Layer] = Field(min_length=1, max_length=256)
    input_shape: ShapeOf | None = Field(None, min_length=1, max_length=8)
    inputs: list[GraphInput] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="A graph model's inputs (keras.Input), in order. A model of several "
        "inputs takes its data as an object keyed by these names.",
    )
    outputs: list[LayerName] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="A graph model's output layers, in order; absent: the last layer. A "
        "model of several outputs takes its targets, losses and metrics keyed by these names.",
    )
    from_job: str | None = Field(
        None,
        max_length=64,
        description="Fine-tuning: the job whose trained model this job starts from (its "
        "layers are these, copied when the job was created).",
    )
    freeze: list[Annotated[int, Field(ge=0, le=255)] | LayerName] = Field(
        default_factory=list,
        max_length=256,
        description="Fine-tuning: layers kept as trained (trainable=False), by index into "
        "layers or by name.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_keras_config(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "keras_config" not in data:
            return data
        if set(data) != {"keras_config"}:
            raise ValueError("expected either keras_config or layers/input_shape, received both")
        return model_from_keras_config(data["keras_config"])

    @model_validator(mode="after")
    def _one_input_shape(self) -> ModelSpec:
        self._check_freeze()
        if self.inputs is not None:
            self._check_graph(self.inputs)
            return self
        wired = [i for i, layer in enumerate(self.layers) if layer.inputs is not None]
        if wired or self.outputs is not None:
            where = f"layers.{wired[0]}.inputs" if wired else "outputs"
            raise ValueError(f"expected {where} only in a graph model (with inputs), received it")
        merging = [i for i, layer in enumerate(self.layers) if layer.arity != (1, 1)]
        if merging:
            kind = self.layers[merging[0]].type
            raise ValueError(
                f"expected layers of one input in a stack, received {kind} at layers."
                f"{merging[0]}: a layer of several inputs needs a graph model (inputs, outputs)"
            )
        later = [i for i, layer in enumerate(self.layers) if i and layer.input_shape is not None]
        if later:
            raise ValueError(
                f"expected input_shape only on the first layer, received it on layers.{later[0]}"
            )
        if self.input_shape is not None and self.layers[0].input_shape is not None:
            raise ValueError("expected input_shape on the model or its first layer, received both")
        if self.resolved_input_shape is None:
            raise ValueError(
                "expected input_shape on the model or its first layer, received neither"
            )
        return self

    def _check_graph(self, inputs: list[GraphInput]) -> None:
        if self.input_shape is not None or any(layer.input_shape for layer in self.layers):
            raise ValueError("expected the input's shape in inputs only, received input_shape")
        defined = [i.name for i in inputs]
        if len(set(defined)) != len(defined):
            twice = next(name for i, name in enumerate(defined) if name in defined[:i])
            raise ValueError(f"expected unique input names, received {twice!r} twice")
        used: set[str] = set()
        for index, layer in enumerate(self.layers):
            if layer.name is None:
                raise ValueError(
                    f"expected a name on every layer of a graph, layers.{index} has none"
                )
            if index == 0 and layer.inputs is None and len(inputs) > 1:
                raise ValueError(
                    "expected layers.0.inputs to name the model input(s) it is called on, "
                    f"received none (the model has {len(inputs)} inputs)"
                )
            wired = self.layer_inputs(index)
            unknown = [name for name in wired if name not in defined]
            if unknown:
                raise ValueError(
                    f"expected layers.{index}.inputs to name model inputs or earlier layers, "
                    f"received {unknown[0]!r}{did_you_mean(unknown[0], defined)}"
                )
            if layer.name in defined:
                raise ValueError(f"expected unique names, received {layer.name!r} twice")
            defined.append(layer.name)
            used.update(wired)
        outputs = self.graph_outputs
        layer_names = defined[len(inputs) :]
        for output in outputs:
            if output not in layer_names:
                raise ValueError(
                    f"expected outputs to name layers, received {output!r}"
                    f"{did_you_mean(output, layer_names)}"
                )
        if len(set(outputs)) != len(outputs):
            raise ValueError("expected each output once, received one twice")
        unused = [name for name in defined if name not in used and name not in outputs]
        if unused:
            raise ValueError(
                f"expected every input and layer to lead to an output, received {unused[0]!r} "
                "unused"
            )

    def _check_freeze(self) -> None:
        if self.freeze and self.from_job is None:
            raise ValueError("expected freeze only with from_job (fine-tuning), received it")
        names = [layer.name for layer in self.layers]
        for entry in self.freeze:
            if isinstance(entry, int) and entry >= len(self.layers):
                raise ValueError(
                    f"expected freeze to name layers 0..{len(self.layers) - 1}, received {entry}"
                )
            if isinstance(entry, str) and entry not in names:
                known = [n for n in names if n]
                which = ", ".join(known) or "its layers have no names: use indices"
                raise ValueError(
                    f"expected freeze to name a layer of the model ({which}), received "
                    f"{entry!r}{did_you_mean(entry, known)}"
                )

    def frozen(self, index: int) -> bool:
        """Whether fine-tuning keeps layer ``index`` as trained."""
        return index in self.freeze or self.layers[index].name in self.freeze

    def layer_inputs(self, index: int) -> list[str]:
        """A graph layer's inputs by name: as given, else the layer before (or the input)."""
        given = self.layers[index].inputs
        if given is not None:
            return list(given)
        if index:
            return [str(self.layers[index - 1].name)]
        return [self.inputs[0].name] if self.inputs else []

    @property
    def graph_outputs(self) -> list[str]:
        return list(self.outputs) if self.outputs else [str(self.layers[-1].name)]

    @property
    def is_graph(self) -> bool:
        return self.inputs is not None

    @property
    def input_names(self) -> list[str]:
        """The model's inputs by name (a stack's one input has none: [])."""
        return [graph_input.name for graph_input in self.inputs or []]

    @property
    def output_names(self) -> list[str]:
        """What Keras names the outputs: a graph's output layers; a stack's last layer
        (its name, or "output" where it has none: a stack has one output, never keyed)."""
        if self.is_graph:
            return self.graph_outputs
        return [self.layers[-1].name or "output"]

    @property
    def resolved_input_shape(self) -> tuple[int, ...] | None:
        if self.inputs is not None:
            return self.inputs[0].shape
        return self.input_shape or self.layers[0].input_shape


class CallbackBase(SpecModel):
    """A Keras callback by its class name, with Keras's arguments."""

    @classmethod
    def keras_reference(cls) -> str | None:
        return f"keras.callbacks.{cls.__name__}" if cls is not CallbackBase else None


class EarlyStopping(CallbackBase):
    """``keras.callbacks.EarlyStopping`` with its defaults: as ``fit.early_stopping``, or
    an entry of ``fit.callbacks`` (``{"type": "EarlyStopping", …}``), not both."""

    type: Literal["EarlyStopping"] = "EarlyStopping"
    monitor: str = Field("val_loss", max_length=64)
    patience: int = Field(0, ge=0, le=10_000)
    min_delta: float = Field(0.0, ge=0.0, le=1e6)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False


class ReduceLROnPlateau(CallbackBase):
    """``keras.callbacks.ReduceLROnPlateau`` with its defaults."""

    type: Literal["ReduceLROnPlateau"]
    monitor: str = Field("val_loss", max_length=64)
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(10, ge=0, le=10_000)
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = Field(0.0001, ge=0.0, le=1e6)
    cooldown: int = Field(0, ge=0, le=10_000)
    min_lr: float = Field(0.0, ge=0.0, le=10.0)


class TerminateOnNaN(CallbackBase):
    """``keras.callbacks.TerminateOnNaN``: stop at the batch whose loss is NaN or infinite
    (the job then fails as diverged, with the epochs before it kept)."""

    type: Literal["TerminateOnNaN"]


class TensorBoard(CallbackBase):
    """``keras.callbacks.TensorBoard``: its log directory is kept with the job
    (``GET /v1/jobs/{id}/tensorboard``, a .tar.gz that ``tensorboard --logdir`` reads once
    unpacked). No profiler."""

    type: Literal["TensorBoard"]
    histogram_freq: int = Field(0, ge=0, le=10_000)
    write_graph: bool = True
    write_steps_per_second: bool = False
    update_freq: Literal["epoch", "batch"] | Annotated[int, Field(ge=1, le=10**9)] = "epoch"


class ModelCheckpoint(CallbackBase):
    """``keras.callbacks.ModelCheckpoint``: the job's model (``GET /v1/jobs/{id}/model``)
    is the file it writes. With ``save_best_only``, the model of the epoch whose ``monitor``
    was best (weights and optimizer state as saved then); without, the last epoch's, as
    without the callback. The test scores stay those of the model at the end of ``fit``, as
    a script's ``evaluate`` after ``fit`` computes them."""

    type: Literal["ModelCheckpoint"]
    monitor: str = Field("val_loss", max_length=64)
    mode: Literal["auto", "min", "max"] = "auto"
    save_best_only: bool = False
    initial_value_threshold: float | None = Field(None, ge=-1e30, le=1e30)


Callback = Annotated[
    ReduceLROnPlateau | TerminateOnNaN | TensorBoard | EarlyStopping | ModelCheckpoint,
    Field(discriminator="type"),
]
ClassKey = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,6})$")]


class FitSpec(SpecModel):
    """model.fit's settings: batch size, epochs, shuffling, validation split, callbacks,
    class weights, and fitq's execution options."""

    batch_size: int = Field(32, ge=1, le=65_536)
    epochs: int = Field(1, ge=1, le=100_000)
    shuffle: bool = True
    validation_split: float | None = Field(
        None, gt=0.0, lt=1.0, description="Keras semantics: the last fraction of the rows."
    )
    early_stopping: EarlyStopping | None = None
    callbacks: list[Callback] = Field(
        default_factory=list,
        max_length=8,
        description="Keras callbacks by class name with their arguments, each at most once.",
    )
    class_weight: dict[ClassKey, Annotated[float, Field(gt=0.0, le=1e6)]] | None = Field(
        None,
        max_length=10_000,
        description="fit(class_weight=…): class index (as a string, JSON's keys) → weight; "
        "classes left out weigh 1.",
    )
    max_runtime_seconds: float | None = Field(
        None, gt=0, le=30 * 86_400, description="Stop the job past this; the server caps it."
    )
    mixed_precision: bool = Field(
        False,
        description="Build the model under Keras's mixed policy: mixed_float16 on a GPU, "
        "mixed_bfloat16 on a CPU (recorded in result.execution).",
    )
    jit_compile: bool | None = Field(
        None,
        description="compile(jit_compile=...): XLA on or off; absent: Keras's 'auto' (XLA on "
        "a GPU where the model supports it, off on a CPU).",
    )

    @model_validator(mode="after")
    def _each_callback_once(self) -> FitSpec:
        kinds = [callback.type for callback in self.callbacks]
        twice = [kind for i, kind in enumerate(kinds) if kind in kinds[:i]]
        if twice:
            raise ValueError(f"expected each callback once, received {twice[0]} twice")
        if self.early_stopping is not None and "EarlyStopping" in kinds:
            raise ValueError(
                "expected EarlyStopping in fit.early_stopping or fit.callbacks, received both"
            )
        return self

    def callback(self, kind: type[CallbackT]) -> CallbackT | None:
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    @property
    def stopping(self) -> EarlyStopping | None:
        """EarlyStopping, from ``early_stopping`` or ``callbacks``."""
        return self.early_stopping or self.callback(EarlyStopping)


class ResourcesSpec(SpecModel):
    """What the job trains on."""

    gpus: int | None = Field(
        None,
        ge=0,
        le=16,
        description="GPUs the job trains on (queue gpu<N>, or cpu for 0). Absent: 1 where a "
        "live worker serves gpu1, else 0.",
    )


class JobSpecBase(SpecModel):
    spec_version: Literal[1] = SPEC_VERSION
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="keras.utils.set_random_seed(seed); absent: picked."
    )


# A complete small job: the schema's example, which API explorers and schemathesis start from.
EXAMPLE_JOB: dict[str, Any] = {
    "model": {
        "layers": [
            {"type": "Dense", "units": 4, "activation": "relu", "input_shape": [2]},
            {"type": "Dense", "units": 1},
        ]
    },
    "compile": {"loss": "mse", "optimizer": "adam", "metrics": ["mae"]},
    "fit": {"batch_size": 4, "epochs": 2},
    "data": {
        "train": {
            "x": [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.0, 0.0], [0.2, 0.8]],
            "y": [1.0, 1.0, 1.0, 2.0, 0.0, 1.0],
        },
        "test": {"x": [[0.3, 0.3], [0.9, 0.1]], "y": [0.6, 1.0]},
    },
    "seed": 7,
}


class FromJob(SpecModel):
    """Fine-tuning: start from a succeeded job's trained model (one of the tenant's), as
    ``keras.models.load_model`` of its ``.keras`` would, then compile and fit with this job's
    settings. ``freeze``: its layers to keep as trained (``layer.trainable = False``)."""

    from_job: str = Field(min_length=1, max_length=64)
    freeze: list[Annotated[int, Field(ge=0, le=255)] | LayerName] = Field(
        default_factory=list, max_length=256
    )


def _model_kind(value: Any) -> str:
    """A body's model is a spec (layers), a Keras model's JSON, or a fine-tuning of a job."""
    if isinstance(value, FromJob):
        return "from_job"
    if not isinstance(value, dict):
        return "spec"
    if "keras_config" in value:
        return "keras_config"
    return "from_job" if "from_job" in value and "layers" not in value else "spec"


# What a ``{"keras_config": …}`` model looks like on the wire (it validates as a ModelSpec:
# ``ModelSpec._from_keras_config`` translates it into layers first).
KERAS_CONFIG_SCHEMA = {
    "title": "KerasConfigModel",
    "description": "A Keras 3 model's model.to_json() (the string, or the parsed object), "
    "Sequential or functional, translated through fitq's allowlist into layers.",
    "type": "object",
    "properties": {
        "keras_config": {
            "anyOf": [{"type": "string"}, {"type": "object"}],
            "description": "model.to_json(), as a string or parsed.",
        }
    },
    "required": ["keras_config"],
    "additionalProperties": False,
}


class JobCreate(JobSpecBase):
    """A job to train (POST /v1/jobs): the model, compile and fit as a Keras script writes
    them, the data, and an optional seed (picked and recorded when absent)."""

    model_config = ConfigDict(json_schema_extra=described_with_examples(EXAMPLE_JOB))

    model: Annotated[  # type: ignore[assignment]
        Annotated[ModelSpec, Tag("spec")]
        | Annotated[ModelSpec, Tag("keras_config"), WithJsonSchema(KERAS_CONFIG_SCHEMA)]
        | Annotated[FromJob, Tag("from_job")],
        Discriminator(_model_kind),
    ]
    data: DataSpec

    @model_validator(mode="after")
    def _one_validation_source(self) -> JobCreate:
        if self.fit.validation_split and self.data.validation is not None:
            raise ValueError("expected fit.validation_split or data.validation, received both")
        return self


class StoredDataSpec(SpecModel):
    """The job's data as stored: each split as a dataset id with its shapes, and how targets
    were encoded."""

    train: StoredData
    validation: StoredData | None = None
    test: StoredData | None = None
    test_split: float | None = None
    shuffle_before_split: bool = False
    standardize: bool = False
    label_encoding: LabelEncoding | None = None


class JobSpec(JobSpecBase):
    """A job's spec as stored and returned: data as dataset ids with shapes, seed always set."""

    data: StoredDataSpec
    seed: int = Field(ge=0, le=MAX_SEED)
