"""The panel and preferences draw code, run against a layout that checks every property and operator it names.

Background mode has no UI to draw into, so a recording layout stands in for ``UILayout``.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import bpy

from .bundle_factory import write_bundle


class CheckingLayout:
    """Accepts the UILayout calls the add-on makes and checks their targets exist."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.enabled = self.alert = True
        self.scale_y = 1.0

    def _child(self, *args, **kwargs) -> CheckingLayout:
        return CheckingLayout(self.log)

    row = column = box = split = _child

    def prop(self, data, name: str, **kwargs) -> None:
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.log.append(f"prop:{name}")

    def operator(self, idname: str, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        getattr(getattr(bpy.ops, category), name).get_rna_type()  # raises KeyError if not registered
        self.log.append(f"operator:{idname}")
        return OperatorProps()

    def label(self, text: str = "", **kwargs) -> None:
        self.log.append(f"label:{text}")

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs) -> None:
        assert hasattr(bpy.types, list_type)
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        self.log.append(f"list:{prop}")

    def separator(self, **kwargs) -> None:
        pass


class OperatorProps:
    """Stands in for the operator properties returned by ``layout.operator``."""


def draw(cls, owner=None) -> list[str]:
    log: list[str] = []
    fake = owner if owner is not None else type("FakePanel", (), {})()
    fake.layout = CheckingLayout(log)
    cls.draw(fake, bpy.context)
    return log


def test_panel_draws_photos_settings_and_buttons(addon, scene):
    log = draw(bpy.types.LIKENESS_PT_main)
    for expected in ("list:photos", "prop:output_dir", "prop:texture_size", "operator:likeness.reconstruct",
                     "operator:likeness.import_bundle", "operator:likeness.add_loaded_images"):
        assert expected in log
    assert "operator:likeness.cancel" not in log  # only while a job runs
    scene.likeness.status, scene.likeness.progress = "Fitting the head", 0.4
    assert "prop:progress" in draw(bpy.types.LIKENESS_PT_main)


def test_preferences_draw_backend_buttons(addon):
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    addon.jobs.CheckStatus.text = "Backend 0.1.0"
    log = draw(type(prefs), owner=_PrefsProxy(prefs))
    for expected in ("prop:backend_python", "operator:likeness.check_backend", "operator:likeness.setup_backend",
                     "operator:likeness.open_log", "label:Backend 0.1.0"):
        assert expected in log


class _PrefsProxy:
    """The real preferences' properties plus a writable ``layout``."""

    def __init__(self, prefs) -> None:
        self.backend_python = prefs.backend_python
        self.bl_rna = prefs.bl_rna


def test_fit_quality_panel_shows_confidence_and_warnings(addon, scene, tmp_path):
    def add_fit(manifest: dict) -> None:
        manifest["photos"][0]["fit"] = {"confidence": 0.92}
        manifest["photos"][1]["fit"] = {"confidence": 0.2}
        manifest["photos"][1]["warnings"] = ["The head in b.jpg is turned 60° sideways."]

    api = importlib.import_module(f"{addon.__name__}.api")
    head, *cameras = api.import_bundle(write_bundle(tmp_path / "b", photos=2, edit_manifest=add_fit))
    panel = bpy.types.LIKENESS_PT_fit
    assert panel.poll(SimpleNamespace(active_object=head)) and panel.poll(SimpleNamespace(active_object=cameras[1]))
    assert not panel.poll(SimpleNamespace(active_object=None))
    bpy.context.view_layer.objects.active = head
    log = draw(panel)
    assert [line for line in log if "confidence" in line] == [
        f"label:{cameras[0].name}: confidence 92%", f"label:{cameras[1].name}: confidence 20%"]
    assert "label:The head in b.jpg is turned 60° sideways." in log
