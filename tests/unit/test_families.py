import pytest

from freeaccel.accel_core import families


class _Config:
    pass


def _model_with_config(name):
    config_cls = type(name, (_Config,), {})
    model = type("BaseModel", (), {})()
    model.model_config = config_cls()
    return model


@pytest.mark.parametrize("config,family", [
    ("WAN21_T2V", "wan"), ("WAN22_T2V", "wan"), ("WAN21_Vace", "wan"), ("HunyuanVideo", "hunyuan_video"),
    ("LTXV", "ltxv"), ("GenmoMochi", "mochi"), ("Flux", "flux"), ("Chroma", "flux"), ("QwenImage", "qwen_image"),
    ("SD15", "sd15"), ("SDXL", "sdxl"), ("SDXLRefiner", "sdxl"), ("SVD_img2vid", "svd")])
def test_family_of_known_configs(config, family):
    assert families.family_of(_model_with_config(config)) == family


def test_untested_subclass_is_not_matched():
    assert families.family_of(_model_with_config("Lumina2")) is None  # Z-Image's parent class, not tested


@pytest.mark.parametrize("config,family", [
    ("Flux2", "flux2"), ("ZImage", "z_image"), ("LTXAV", "ltxav"), ("MiniMaxH3", "minimax_h3"),
    ("CogVideoX_I2V", "cogvideox"), ("WAN22_S2V", "wan22_s2v"), ("HunyuanVideo15", "hunyuan_video15"),
    ("SD3", "sd35")])
def test_family_of_2026_configs(config, family):
    assert families.family_of(_model_with_config(config)) == family


@pytest.mark.parametrize("technique,config,version,needed", [
    ("adacache", "LTXAV", (0, 3, 75), "0.8.0"), ("adacache", "MiniMaxH3", (0, 8, 0), "0.33.0"),
    ("adacache", "WAN22_S2V", (0, 3, 75), "0.8.0"), ("local_window", "WAN22_S2V", (0, 3, 75), "0.8.0")])
def test_families_are_refused_below_the_comfyui_they_need(technique, config, version, needed):
    with pytest.raises(families.UnsupportedModelError) as err:
        families.require_family(technique, _model_with_config(config), "Node", version)
    assert str(err.value).startswith("Node: ")
    assert f"needs ComfyUI >= {needed} (this is {'.'.join(map(str, version))}); update ComfyUI" in str(err.value)
    family = families.family_of(_model_with_config(config))
    assert families.require_family(technique, _model_with_config(config), "Node", (0, 33, 0)) == family


def test_require_family_names_supported_families():
    with pytest.raises(families.UnsupportedModelError) as err:
        families.require_family("adacache", _model_with_config("SD15"))
    message = str(err.value)
    assert "'SD15' is not supported" in message
    for name in ("WAN 2.1 / 2.2", "HunyuanVideo", "LTX-Video", "Mochi", "Flux / Chroma", "Qwen-Image", "Flux.2",
                 "Z-Image", "LTX-2 (audio + video)", "Wan 2.2 Animate"):
        assert name in message


def test_support_table_only_names_known_families():
    for technique, table in families.SUPPORT.items():
        assert table, technique
        assert set(table) <= set(families.FAMILIES), technique


def test_accel_core_and_kernels_do_not_import_comfy():
    import pathlib
    root = pathlib.Path(families.__file__).resolve().parent.parent
    for folder in ("accel_core", "kernels"):
        for path in (root / folder).glob("*.py"):
            text = path.read_text()
            assert "import comfy" not in text and "from comfy" not in text, path
