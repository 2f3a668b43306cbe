"""V3 node inputs and prompt validation generated from a technique's settings fields (``accel_core.settings``),
and the docs input table generated from a node's schema."""
import inspect
from typing import Any, Callable, Optional, Sequence

from comfy_api.v0_0_2 import io

from ...accel_core.settings import choices, fields, from_inputs, range_text, ui_value
from .compat import input_options


def settings_inputs(settings_class: type, names: Optional[Sequence[str]] = None) -> list:
    """The V3 inputs of the fields ``names`` of ``settings_class`` (all when None), in field order."""
    inputs = []
    for name, kind, default, spec in fields(settings_class):
        if names is not None and name not in names:
            continue
        common = dict(tooltip=spec.tooltip, optional=spec.optional, **input_options(spec.advanced))
        if spec.label is not None:
            common["display_name"] = spec.label
        offered = choices(kind, spec)
        if offered is not None:
            inputs.append(io.Combo.Input(name, options=list(offered), default=ui_value(default, spec), **common))
        elif kind is bool:
            inputs.append(io.Boolean.Input(name, default=default, **common))
        elif kind is int:
            inputs.append(io.Int.Input(name, default=default, min=spec.minimum, max=spec.maximum, **common))
        elif kind is float:
            numbers = dict(min=spec.minimum, max=spec.maximum, step=spec.step)
            if spec.round is not None:
                numbers["round"] = spec.round
            inputs.append(io.Float.Input(name, default=default, **numbers, **common))
        elif kind is str:
            inputs.append(io.String.Input(name, default=default, **({"multiline": True} if spec.multiline else {}),
                                          **common))
        else:
            raise TypeError(f"{settings_class.__name__}.{name}: no node input for {kind}")
    return inputs


def settings_validator(settings_class: type, name: str,
                       extra_check: Optional[Callable[[Any], Optional[str]]] = None) -> classmethod:
    """A ``validate_inputs`` classmethod checking every settings field (ranges included) with the settings' own
    ``error()`` (then ``extra_check(settings)``), each message prefixed with the node's display ``name``.

    ComfyUI passes a validator only the inputs its signature names and then skips its own range check of them, so
    the signature names every settings field, with the field's default: an input fed by a link is unknown at
    validation and keeps that default (the node checks again when it runs).
    """
    def validate_inputs(cls, **inputs):
        settings = from_inputs(settings_class, inputs)
        error = settings.error()
        if error is None and extra_check is not None:
            error = extra_check(settings)
        return True if error is None else f"{name}: {error}"

    parameters = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(field, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=ui_value(default, spec))
                   for field, _, default, spec in fields(settings_class)]
    validate_inputs.__signature__ = inspect.Signature(parameters)
    return classmethod(validate_inputs)


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}" if isinstance(value, float) else str(value)


def input_table(schema: io.Schema, settings_class: type) -> str:
    """The docs table ``| input | default | range | meaning |`` of every input of a node ``schema`` (io.Schema):
    settings fields with their default and range, other inputs (models, conditioning) with their tooltip."""
    specs = {name: (kind, spec) for name, kind, _, spec in fields(settings_class)}
    rows = ["| input | default | range | meaning |", "|---|---|---|---|"]
    for item in schema.inputs:
        label = f"`{item.id}`" + (f" ({item.display_name})" if item.display_name else "")
        if item.id not in specs:
            rows.append(f"| {label} | {'optional' if item.optional else ''} | | {item.tooltip} |".replace("|  |", "| |"))
            continue
        kind, spec = specs[item.id]
        meaning = ("Advanced. " if spec.advanced else "") + spec.tooltip
        rows.append(f"| {label} | {_default_text(item.default)} | {range_text(kind, spec)} | {meaning} |")
    return "\n".join(rows)
