"""Settings fields as a person reads them: every default is shown as it is, labels fit the default node width, every
field carries a tooltip, and the fields' declared ranges are enforced by the settings' own check."""
import math

import pytest

from freeaccel.accel_core.adacache import AdaCacheSettings
from freeaccel.accel_core.attention_backend import AttentionBackendSettings
from freeaccel.accel_core.local_window import LocalWindowSettings
from freeaccel.accel_core.motion_transfer import MotionTransferSettings
from freeaccel.accel_core.settings import ON_OFF, Setting, choices, fields, from_inputs, range_error, setting
from freeaccel.accel_core.temporal_prune import TemporalPruneSettings
from freeaccel.accel_core.token_prune import PruneSettings

SETTINGS = [AdaCacheSettings, PruneSettings, TemporalPruneSettings, LocalWindowSettings, MotionTransferSettings,
            AttentionBackendSettings]
FIELDS = [(cls, *field) for cls in SETTINGS for field in fields(cls)]
IDS = [f"{cls.__name__}.{name}" for cls, name, *_ in FIELDS]

# Default node width: ComfyUI cut AdaCache's "custom_codebook" label to "cus ..." next to its 41-character value.
# A label may take 16 characters; a one-line text or combo widget shows label and value on one line, 30 together.
MAX_LABEL = 16
MAX_LABEL_AND_VALUE = 30


def frontend_shown(value, step, round_to=None):
    """What the ComfyUI frontend shows (and stores once edited) for a float widget: it shows
    max(-floor(log10(step)), 0) decimals and rounds the value to ``round`` when given, else to one unit of the
    last shown decimal, halves up (its getNumberDefaults / onFloatValueChange)."""
    precision = max(-math.floor(math.log10(step)), 0)
    quantum = round_to if round_to is not None else 10.0 ** -precision
    return float(f"{math.floor(value / quantum + 0.5) * quantum:.{precision}f}")  # Math.round: half up


def test_frontend_rule_reproduces_the_reported_rounding():
    assert frontend_shown(0.0625, 0.0025) == 0.063  # TokenPrune's score_queries before the step changed
    assert frontend_shown(0.0625, 0.0005) == 0.0625
    assert frontend_shown(0.003, 0.0001, 0.00001) == 0.003


@pytest.mark.parametrize("cls,name,kind,default,spec", FIELDS, ids=IDS)
def test_float_defaults_are_shown_as_they_are(cls, name, kind, default, spec):
    if kind is not float:
        return
    assert spec.step is not None, f"{name}: a float input needs a step (it sets the decimals shown)"
    assert frontend_shown(default, spec.step, spec.round) == pytest.approx(default, abs=1e-12), (
        f"{cls.__name__}.{name}: default {default} is shown as {frontend_shown(default, spec.step, spec.round)} "
        f"with step {spec.step} / round {spec.round}")


@pytest.mark.parametrize("cls,name,kind,default,spec", FIELDS, ids=IDS)
def test_labels_fit_the_default_node_width(cls, name, kind, default, spec):
    label = spec.label or name
    assert len(label) <= MAX_LABEL, f"{name}: give it a label of at most {MAX_LABEL} characters"
    offered = choices(kind, spec)
    if offered is not None:
        longest = max(len(str(option)) for option in offered)
    elif kind is str and not spec.multiline:
        longest = len(default)
    else:
        return
    assert len(label) + longest <= MAX_LABEL_AND_VALUE, f"{name}: label and value do not fit on one line"


@pytest.mark.parametrize("cls,name,kind,default,spec", FIELDS, ids=IDS)
def test_every_field_is_described_and_its_default_is_in_range(cls, name, kind, default, spec):
    assert spec.tooltip and spec.tooltip[-1] in ".)", f"{name}: a tooltip of one or more sentences"
    assert kind in (bool, int, float, str)
    assert spec.options is None or default in spec.options
    assert not spec.on_off or kind is bool


@pytest.mark.parametrize("cls", SETTINGS, ids=[cls.__name__ for cls in SETTINGS])
def test_defaults_are_valid(cls):
    assert cls().error() is None


@pytest.mark.parametrize("cls,name,kind,default,spec", FIELDS, ids=IDS)
def test_values_beyond_the_declared_range_are_rejected(cls, name, kind, default, spec):
    if kind not in (int, float) or spec.maximum is None:
        return
    over = spec.maximum + (1 if kind is int else spec.step)
    error = cls(**{name: kind(over)}).error()
    assert error is not None and name in error


def test_range_error_messages():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Example:
        count: int = setting(2, "A count.", minimum=1, maximum=4)
        mode: str = setting("a", "A mode.", options=("a", "b"))

    assert range_error(Example()) is None
    assert range_error(Example(count=0)) == "count must be at least 1, got 0"
    assert range_error(Example(count=5)) == "count must be at most 4, got 5"
    assert range_error(Example(mode="c")) == "mode must be one of a, b, got 'c'"


def test_on_off_inputs_become_bools_and_unknown_inputs_are_ignored():
    assert from_inputs(PruneSettings, {"dsap": ON_OFF[1], "ratio": 0.25, "model": object()}) == PruneSettings(
        dsap=False, ratio=0.25)
    assert from_inputs(PruneSettings, {}) == PruneSettings()
    assert from_inputs(PruneSettings, {"dsap": "maybe"}).error() == "dsap must be one of on, off, got 'maybe'"
    assert Setting("x.").advanced is False
