"""Text edits, text → head and text relighting (likeness.edit) with a tiny random Stable Diffusion folder built
by the real diffusers/transformers classes, the real ICT head and the real pipeline classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import BadInput, Cancelled

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tiny_sd import make_tiny_sd  # noqa: E402

from likeness.appearance import light as sh  # noqa: E402
from likeness.service.bundle import read_bundle  # noqa: E402
from likeness.service.cli import main  # noqa: E402
from likeness.edit import areas, lights, watermark  # noqa: E402
from likeness.edit.job import EditRequest, read_marks, run  # noqa: E402

FAST = ["--steps", "3", "--size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny_sd")


@pytest.fixture(scope="module")
def astronaut_bundle(tmp_path_factory, engine, ict_path) -> Path:
    """A real bundle reconstructed from the astronaut portrait (256 px textures)."""
    from likeness.service.cli import astronaut_photo
    from likeness.service.pipeline import ReconstructRequest

    out = tmp_path_factory.mktemp("bundles") / "astronaut"
    engine.reconstruct(ReconstructRequest(photos=[str(astronaut_photo())], output=str(out), texture_size=256,
                                          model=str(ict_path)))
    return out


@pytest.fixture
def models_home(tmp_path, monkeypatch, ict_path):
    """An empty user data folder (no installed Stable Diffusion), the ICT model from ../shared."""
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIKENESS_ICT_MODEL", str(ict_path))
    monkeypatch.delenv("LIKENESS_SD_MODEL", raising=False)
    return tmp_path / "data"


def _guidance(tiny_sd):
    from likeness.edit.guidance import Guidance
    from likeness.edit.job import pipeline

    return Guidance(pipeline(tiny_sd, "cpu"), "an old man with a grey beard", "blurry", 7.5, "cpu")


def test_gradients_reach_every_editable_part(ict, tiny_sd):
    """One score-distillation step through the real pipeline's VAE, UNet and text encoder reaches the albedo
    map, the light, the identity coefficients and the expression weights."""
    from likeness.edit.render import HeadRenderer, orbit_view

    skin = [i for i, m in enumerate(ict.materials) if m.projected]
    albedo = [torch.full((3, 32, 32), 0.4, requires_grad=True) for _ in skin]
    light = torch.tensor(sh.directional((0.3, 0.3, 1.0), 0.8, 0.3), dtype=torch.float32, requires_grad=True)
    identity = torch.zeros(10, requires_grad=True)
    expression = torch.zeros(len(ict.expression_names), requires_grad=True)
    basis = torch.as_tensor(ict.identity_basis[:10], dtype=torch.float32)
    exp_basis = torch.as_tensor(ict.expression_basis, dtype=torch.float32)
    verts = torch.as_tensor(ict.neutral, dtype=torch.float32) + torch.einsum("k,kvc->vc", identity, basis) \
        + torch.einsum("e,evc->vc", expression, exp_basis)
    renderer = HeadRenderer(ict, {m: i for i, m in enumerate(skin)})
    view = orbit_view(ict.neutral[ict.landmarks_68].mean(0), 20.0, 0.0, 32)
    image, mask = renderer.render(view, verts, albedo, light)
    assert image.shape == (3, 32, 32) and 0.2 < mask.float().mean() < 0.95
    loss = _guidance(tiny_sd).loss(image[None], [20.0], (0.02, 0.98), torch.Generator().manual_seed(0))
    loss.backward()
    for name, tensor in {"albedo": albedo[0], "light": light, "identity": identity, "expression": expression}.items():
        assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0, name


def test_region_edit_leaves_the_rest_unchanged(ict, tiny_sd):
    from likeness.edit.optimise import run_edit
    from likeness.edit.parts import EditInputs, EditSettings

    size = 128
    maps = {i: np.full((size, size, 3), 150, np.uint8) for i, m in enumerate(ict.materials) if m.projected}
    vmask = areas.vertex_mask(ict, "lips")
    tmasks = areas.texel_masks(ict, vmask, {m: size for m in maps})
    assert 0 < vmask.sum() < 0.05 * len(vmask)
    inputs = EditInputs(model=ict, vertices=ict.vertices(), identity=np.zeros(10), identity_basis=ict.identity_basis[:10],
                        expression=np.zeros(len(ict.expression_names)), light=sh.directional((0, 0, 1), 0.8, 0.3),
                        maps=maps, vertex_mask=vmask, texel_masks=tmasks)
    settings = EditSettings(what=("albedo", "shape", "expression"), steps=3, size=32, map_size=64,
                            strength=1.0, learning_rate=0.2)
    result = run_edit(inputs, settings, _guidance(tiny_sd))
    outside_v = vmask == 0
    assert np.array_equal(result.vertices[outside_v], inputs.vertices[outside_v])
    assert np.abs(result.vertices[~outside_v] - inputs.vertices[~outside_v]).max() > 1e-7
    face = next(m for m in maps if ict.materials[m].name == "skin_face")
    outside_t = tmasks[face] == 0
    assert np.array_equal(result.maps[face][outside_t], maps[face][outside_t])
    assert np.abs(result.maps[face][~outside_t].astype(int) - 150).max() > 0
    lip_shapes = {n for n, w in zip(ict.expression_names, result.expression) if w > 0}
    assert all("mouth" in n.lower() or "jaw" in n.lower() for n in lip_shapes), lip_shapes


def test_text_to_head_and_edit_from_the_cli(astronaut_bundle, tiny_sd, models_home, tmp_path, capsys):
    new = tmp_path / "old_woman"
    assert main(["create", "--prompt", "a 70-year-old woman with freckles", "--sd-model", str(tiny_sd),
                 "--texture-size", "256", "-o", str(new), *FAST]) == 0
    manifest, arrays = read_bundle(new)
    assert manifest["edit"]["kind"] == "create" and manifest["edit"]["prompt"].startswith("a 70-year-old")
    assert manifest["edit"]["model"]["license"] == "mit" and manifest["photos"] == []
    assert arrays["expression_deltas"].shape[0] == 53 and np.abs(manifest["identity"]).max() > 0

    edited = tmp_path / "edited"
    before = (astronaut_bundle / "manifest.json").read_text()
    assert main(["edit", str(astronaut_bundle), "--prompt", "smiling, sunburnt", "--negative-prompt", "blurry",
                 "--what", "albedo,expression,light", "--seed", "7", "--sd-model", str(tiny_sd), "-o", str(edited),
                 *FAST]) == 0
    assert (astronaut_bundle / "manifest.json").read_text() == before, "the source bundle is left alone"
    manifest, arrays = read_bundle(edited)
    record = manifest["edit"]
    assert record["source_bundle"]["path"] == str(astronaut_bundle.resolve())
    assert (record["prompt"], record["negative_prompt"], record["seed"], record["steps"]) == \
        ("smiling, sunburnt", "blurry", 7, 3)
    assert record["what"] == ["albedo", "expression", "light"]
    assert (edited / manifest["photos"][0]["path"]).is_file() and (edited / "preview.png").is_file()
    marks = read_marks(edited)
    assert marks and all(m["marked"] and m["matches"] for m in marks)
    assert main(["watermark", str(edited)]) == 0 and main(["watermark", str(astronaut_bundle)]) == 3
    assert "matches the manifest" in capsys.readouterr().out
    manifest_file = edited / "manifest.json"  # a record changed afterwards no longer matches its mark
    manifest_file.write_text(manifest_file.read_text().replace("smiling, sunburnt", "smiling, pale"))
    assert all(m["marked"] and not m["matches"] for m in read_marks(edited))


def test_text_relighting_needs_no_diffusion_model(astronaut_bundle, models_home, tmp_path):
    light = lights.light_from_text("warm sunset from the left")
    s = sh.shading(light, np.array([[1.0, 0, 0], [-1.0, 0, 0]]))
    assert s[0].mean() > 2 * s[1].mean(), "from the subject's left (+X)"
    assert s[0, 0] > s[0, 2] * 1.3, "warm: more red than blue"
    with pytest.raises(BadInput):
        lights.light_from_text("an elephant")
    relit = tmp_path / "relit"
    assert main(["edit", str(astronaut_bundle), "--what", "light", "--prompt", "warm sunset from the left",
                 "--steps", "0", "-o", str(relit)]) == 0
    manifest, _ = read_bundle(relit)
    assert np.allclose(manifest["photos"][0]["light"]["sh"], light, atol=1e-4)
    assert manifest["edit"]["light_from_words"] and manifest["edit"]["model"] is None
    image = tmp_path / "preview.png"
    assert main(["relight", str(relit), "--light", "cool soft light from the right", "-o", str(image)]) == 0
    assert image.stat().st_size > 1000


def test_bad_input_gives_a_clear_message_and_writes_nothing(astronaut_bundle, tiny_sd, models_home, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["edit", str(astronaut_bundle), "--prompt", "  "], "prompt is empty"),
        (["edit", str(astronaut_bundle), "--prompt", "older"], "No Stable Diffusion model is installed"),
        (["edit", str(astronaut_bundle), "--prompt", "older", "--sd-model", str(tmp_path / "nope")], "does not exist"),
        (["edit", str(tmp_path), "--prompt", "older", "--sd-model", str(tiny_sd)], "not a Likeness bundle"),
        (["edit", str(astronaut_bundle), "--prompt", "older", "--what", "hair"], "unknown parts"),
        (["edit", str(astronaut_bundle), "--prompt", "older", "--region", "elbow"], "Unknown region"),
    ]
    broken = tmp_path / "broken_sd"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    cases.append((["edit", str(astronaut_bundle), "--prompt", "older", "--sd-model", str(broken)], "not valid JSON"))
    pickled = tmp_path / "pickled_sd"
    subprocess.run(["cp", "-r", str(tiny_sd), str(pickled)], check=True)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    cases.append((["edit", str(astronaut_bundle), "--prompt", "older", "--sd-model", str(pickled)], "a pickle, which is refused"))
    for argv, message in cases:
        assert main([*argv, "-o", str(out)]) == 2, argv
        assert message in capsys.readouterr().err, (argv, message)
        assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_cancel_leaves_nothing_half_written(astronaut_bundle, tiny_sd, engine, models_home, tmp_path):
    seen = []
    request = EditRequest(prompt="older", bundle=str(astronaut_bundle), output=str(tmp_path / "new"), steps=50,
                          size=32, device="cpu", sd_model=str(tiny_sd))
    with pytest.raises(Cancelled):
        run(engine, request, report=lambda stage, f, m: seen.append(stage), cancelled=lambda: seen.count("edit") >= 2)
    assert list(tmp_path.iterdir()) == [] and seen.count("edit") == 2


def test_install_sd_checks_the_folder_and_records_its_licence(tiny_sd, models_home, tmp_path):
    from likeness.service import models

    with pytest.raises(BadInput, match="not downloaded"):
        models.install("sd", None)
    with pytest.raises(BadInput, match="model_index.json is missing"):
        models.install("sd", str(tmp_path))
    path = models.install("sd", str(tiny_sd), log=lambda m: None)
    entry = {m["name"]: m for m in models.list_models()}["sd"]
    assert entry["installed"] and entry["license"] == "mit" and Path(entry["path"]) == path
    assert json.loads((path / "likeness_model.json").read_text())["source"] == str(tiny_sd)


def test_watermark_reads_back_and_is_invisible():
    import skimage.data

    image = skimage.data.astronaut()
    payload = watermark.payload_for({"prompt": "older"})
    marked = watermark.embed(image, payload)
    assert np.abs(marked.astype(int) - image).mean() < 1.5
    assert watermark.read(marked)[0] == payload
    found, confidence = watermark.read(image)
    assert not watermark.is_marked(found) and confidence < 0.2


def test_the_core_runs_without_torch_diffusers_transformers(ict_path, tmp_path):
    """With torch, diffusers and transformers unimportable: the backend imports, lists models, reconstructs and
    relights by words; a text edit that needs them says what to install."""
    code = ("import sys\n"
            "for name in ('torch', 'diffusers', 'transformers'): sys.modules[name] = None\n"
            "import likeness.service.cli, likeness.service.serve, likeness.service.jobs, likeness.edit.job\n"
            "from likeness.service.cli import main, astronaut_photo\n"
            f"out = {str(tmp_path / 'b')!r}\n"
            f"assert main(['reconstruct', str(astronaut_photo()), '-o', out, '--texture-size', '128', "
            f"'--model', {str(ict_path)!r}]) == 0\n"
            "assert main(['edit', out, '--what', 'light', '--prompt', 'warm light from the left', '--steps', '0', "
            f"'-o', {str(tmp_path / 'r')!r}]) == 0\n"
            "assert main(['models', 'list']) == 0\n"
            "assert not any(m.startswith(('torch', 'diffusers', 'transformers')) and sys.modules[m] for m in sys.modules)\n"
            "print('ok')\n")
    env = dict(os.environ, LIKENESS_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_warm_backend_edits_with_progress_and_cancel(astronaut_bundle, tiny_sd, ict_path, tmp_path):
    from test_serve import Backend

    backend = Backend(tmp_path, env={"LIKENESS_DATA_DIR": str(tmp_path / "data"), "LIKENESS_ICT_MODEL": str(ict_path)})
    try:
        assert backend.next()["type"] == "ready"
        backend.send({"id": "h", "op": "hello"})
        hello = backend.until_done("h")[-1]["result"]
        assert {"edit", "create"} <= set(hello["jobs"]) and not hello["models"]["sd"]["installed"]
        params = {"bundle": str(astronaut_bundle), "prompt": "older", "what": "albedo,shape", "steps": 3,
                  "size": 32, "device": "cpu", "sd_model": str(tiny_sd), "output": str(tmp_path / "older")}
        backend.send({"id": "e", "op": "edit", "params": params})
        events = backend.until_done("e")
        assert events[-1]["type"] == "result", events[-1]
        assert [e["stage"] for e in events if e["type"] == "progress"].count("edit") == 3
        assert read_bundle(events[-1]["result"]["bundle"])[0]["edit"]["what"] == ["albedo", "shape"]

        backend.send({"id": "c", "op": "edit", "params": dict(params, steps=2000, output=str(tmp_path / "never"))})
        while (event := backend.next())["type"] != "progress" or event.get("stage") != "edit":
            pass
        backend.send({"id": "x", "op": "cancel", "params": {"job": "c"}})
        last = backend.until_done("c")[-1]
        assert last["type"] == "error" and last["error"]["type"] == "Cancelled"
        assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".never.tmp-*"))
    finally:
        backend.send({"id": "s", "op": "shutdown"})
        backend.proc.wait(timeout=30)


def test_v_prediction_models_guide_too(tmp_path):
    """SD 2.x-style UNets predict v, not the noise: the guidance converts and still yields a finite gradient."""
    from likeness.edit.guidance import Guidance
    from likeness.edit.sd import load_pipeline

    pipe = load_pipeline(make_tiny_sd(tmp_path / "v_sd", prediction_type="v_prediction"), "cpu")
    guidance = Guidance(pipe, "a red face", "", 7.5, "cpu")
    assert guidance.prediction == "v_prediction"
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    guidance.loss(image, [90.0], (0.02, 0.98), torch.Generator().manual_seed(1)).backward()
    assert torch.isfinite(image.grad).all() and float(image.grad.abs().sum()) > 0
