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
    assert families.family_of(_model_with_config("Flux2")) is None


def test_require_family_names_supported_families():
    with pytest.raises(families.UnsupportedModelError) as err:
        families.require_family("adacache", _model_with_config("SD15"))
    message = str(err.value)
    assert "'SD15' is not supported" in message
    for name in ("WAN 2.1 / 2.2", "HunyuanVideo", "LTX-Video", "Mochi", "Flux / Chroma", "Qwen-Image"):
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
