"""Settings fields that carry what a user sees of them: default, range, tooltip, whether the input is advanced.

Each technique's frozen settings dataclass declares its fields with ``setting(...)``; the node schema, prompt
validation and the input tables in ``docs/`` are generated from them, so a default, a range or a tooltip is written
once. Field order is the order of the node's inputs (saved workflows store widget values by position). Never imports
ComfyUI.
"""
import dataclasses
from typing import Any, Optional

ON_OFF = ("on", "off")


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the UI, the validation and the docs need to know about one settings field (besides its default)."""
    tooltip: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    round: Optional[float] = None    # float inputs: the value the frontend rounds to (None: implied by step)
    options: Optional[tuple] = None  # combo inputs: the choices
    advanced: bool = False           # folded away by frontends that support it (rarely changed)
    label: Optional[str] = None      # short display name where the id does not fit the default node width
    multiline: bool = False          # string inputs: a text area (long values stay readable)
    on_off: bool = False             # a bool shown as an "on" / "off" combo (kept for saved workflows)
    optional: bool = False           # added after prompts were saved: an API prompt without it keeps the default


def setting(default: Any, tooltip: str, **options: Any) -> Any:
    """A dataclass field with ``default`` and the ``Setting(tooltip, **options)`` metadata."""
    return dataclasses.field(default=default, metadata={"setting": Setting(tooltip, **options)})


def fields(settings_class: type) -> list:
    """[(name, type, default, Setting)] of every settings field, in input order."""
    return [(f.name, f.type, f.default, f.metadata["setting"]) for f in dataclasses.fields(settings_class)
            if "setting" in f.metadata]


def choices(kind: type, spec: Setting) -> Optional[tuple]:
    """The values a combo offers (None for inputs that are not combos)."""
    return ON_OFF if spec.on_off else spec.options


def ui_value(value: Any, spec: Setting) -> Any:
    """A settings value as the node input holds it (bools shown as on / off stay strings there)."""
    return (ON_OFF[0] if value else ON_OFF[1]) if spec.on_off else value


def from_inputs(settings_class: type, inputs: dict) -> Any:
    """The settings object for node inputs (missing ones keep their defaults; other keys are ignored)."""
    values = {}
    for name, _, _, spec in fields(settings_class):
        if name in inputs:
            value = inputs[name]
            values[name] = value == ON_OFF[0] if spec.on_off and value in ON_OFF else value  # others: range_error
    return settings_class(**values)


def range_error(settings: Any) -> Optional[str]:
    """The message for the first field outside its declared range or options, or None."""
    for name, kind, _, spec in fields(type(settings)):
        value = getattr(settings, name)
        if spec.on_off and not isinstance(value, bool):
            return f"{name} must be one of {', '.join(ON_OFF)}, got {value!r}"
        if spec.options is not None and value not in spec.options:
            return f"{name} must be one of {', '.join(map(str, spec.options))}, got {value!r}"
        if kind in (int, float) and not isinstance(value, bool):
            if spec.minimum is not None and not value >= spec.minimum:
                return f"{name} must be at least {spec.minimum:g}, got {value:g}"
            if spec.maximum is not None and not value <= spec.maximum:
                return f"{name} must be at most {spec.maximum:g}, got {value:g}"
    return None


def range_text(kind: type, spec: Setting) -> str:
    """The range or options as the docs tables write them."""
    offered = choices(kind, spec)
    if offered is not None:
        return ", ".join(f"`{option}`" for option in offered)
    if spec.minimum is None and spec.maximum is None:
        return ""
    low = "" if spec.minimum is None else f"{spec.minimum:g}"
    high = "" if spec.maximum is None else f"{spec.maximum:g}"
    return f"{low} – {high}"
