"""How a Keras model was compiled, as fitq's ``compile``: the loss, optimizer and metrics a
live model carries (``model.get_compile_config()``), or Keras objects passed by hand, read
through the same allowlists as a spec. An argument the spec has no field for is accepted only
at its Keras default; anything else is refused by name, never dropped.

Pure Python: it reads configs (``get_config()``), never imports Keras."""

from __future__ import annotations

from typing import Any

from fitq.errors import SpecError
from fitq.spec.keras_config import at_keras_default
from fitq.spec.losses import LOSS_BY_TYPE, LOSS_NAMES
from fitq.spec.metrics import METRIC_CLASSES, METRIC_OBJECTS
from fitq.spec.optimizers import OPTIMIZER_NAMES, OPTIMIZERS

# The metric classes that take arguments, by Keras class name (each spec class names its own).
_METRIC_OBJECT_CLASSES = {cls.keras_class: kind for kind, cls in METRIC_OBJECTS.items()}


def compile_from_keras(config: dict[str, Any] | None, **given: Any) -> dict[str, Any]:
    """fitq's ``compile`` from a model's compile config (None: not compiled) and what the
    caller passes (``loss``, ``optimizer``, ``metrics``: names, spec objects or Keras
    objects), the caller's winning."""
    config = config or {}
    weighted = config.get("weighted_metrics")
    if weighted is not None:
        raise SpecError(
            "compile.weighted_metrics",
            f"expected no weighted_metrics (fitq has none), received {weighted!r}",
        )
    loss: Any = given.get("loss") or config.get("loss") or "mse"
    optimizer = given.get("optimizer") or config.get("optimizer") or "adam"
    metrics = given.get("metrics") or config.get("metrics") or []
    weights = given.get("loss_weights") or config.get("loss_weights")
    compiled: dict[str, Any] = {
        "loss": (
            {name: _loss(_plain(one)) for name, one in loss.items()}
            if _per_output(loss)
            else _loss(_plain(loss))
        ),
        "optimizer": _optimizer(_plain(optimizer)),
        "metrics": (
            {name: _metrics(listed, f"compile.metrics.{name}") for name, listed in metrics.items()}
            if isinstance(metrics, dict)
            else _metrics(metrics, "compile.metrics")
        ),
    }
    if weights is not None:
        if not isinstance(weights, dict):
            raise SpecError(
                "compile.loss_weights",
                f"expected loss_weights keyed by output name (a dict), received {weights!r}",
            )
        compiled["loss_weights"] = weights
    return compiled


def _per_output(loss: Any) -> bool:
    """A dict of losses keyed by output name (not one serialised loss)."""
    return isinstance(loss, dict) and "class_name" not in loss and "type" not in loss


def _metrics(metrics: Any, loc: str) -> list[Any]:
    if not isinstance(metrics, list | tuple):
        raise SpecError(loc, f"expected a list of metrics, received {metrics!r}")
    return [_metric(_plain(m), f"{loc}.{i}") for i, m in enumerate(metrics)]


def _plain(value: Any) -> Any:
    """A Keras object as its serialised form; names and dicts as they are."""
    if isinstance(value, str | dict) or not hasattr(value, "get_config"):
        return value
    config = value.get_config()
    # A loss function's own arguments: Keras's Huber.get_config leaves out its delta.
    config.update(getattr(value, "_fn_kwargs", None) or {})
    return {"class_name": type(value).__name__, "config": config}


def _loss(value: Any) -> Any:
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    kind = LOSS_NAMES.get(str(value["class_name"]))
    if kind is None:
        raise SpecError(
            "compile.loss", f"expected a loss fitq knows, received {value['class_name']!r}"
        )
    fields = set(LOSS_BY_TYPE[kind].model_fields)
    return {"type": kind, **_arguments(value, fields, "compile.loss")}


def _optimizer(value: Any) -> Any:
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    kind = OPTIMIZER_NAMES.get(str(value["class_name"]))
    if kind is None:
        raise SpecError(
            "compile.optimizer",
            f"expected an optimizer fitq knows, received {value['class_name']!r}",
        )
    optimizer_class = next(c for c in OPTIMIZERS if c.keras_class.lower() == kind)
    fields = set(optimizer_class.model_fields)
    return {"type": kind, **_arguments(value, fields, "compile.optimizer")}


def _metric(value: Any, loc: str) -> Any:
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    class_name = str(value["class_name"])
    config = value.get("config") or {}
    kind = _METRIC_OBJECT_CLASSES.get(class_name)
    if kind is not None:
        return {"type": kind, **_arguments(value, set(METRIC_OBJECTS[kind].model_fields), loc)}
    name = config.get("name")
    if METRIC_CLASSES.get(str(name)) == class_name:
        _arguments(value, {"name"}, loc)  # nothing else may differ from Keras's defaults
        return name
    raise SpecError(
        loc,
        f"expected a metric fitq knows by its Keras name, received {class_name} named {name!r}",
    )


def _arguments(value: dict[str, Any], fields: set[str], loc: str) -> dict[str, Any]:
    """The config's arguments the spec has fields for; the rest must be at Keras's defaults
    (``keras_config.NEUTRAL``, the same table a layer's arguments are read against)."""
    kept: dict[str, Any] = {}
    for key, argument in (value.get("config") or {}).items():
        if key in fields and key != "type":
            if argument is not None:
                kept[key] = argument
        elif key != "name" and not at_keras_default(key, argument):
            raise SpecError(
                f"{loc}.{key}",
                f"expected {key} at its Keras default (fitq has no {key} for "
                f"{value['class_name']}), received {argument!r}",
            )
    return kept
