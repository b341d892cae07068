"""The edit itself: the head's parts that may change, optimised against score distillation and regularisers.

What may change (``what``): ``albedo`` (the skin's albedo UV maps), ``shape`` (identity coefficients),
``expression`` (the 53 weights) and ``light`` (SH, head frame). The regularisers (FaceDNeRF's):

- the photo's view, rendered with the current head under the photo's light, stays close to how it rendered
  before the edit, weighted by ``1 − 0.8 · strength`` (a strong edit may move further from the photo);
- the identity stays near where it started (text → head: near the mean, the model's N(0,1) prior);
- albedo edits do not bake light in: while the light is not being edited, every score-distillation view is lit
  by a different random light, so a painted-on shadow never matches the shading and does not pay;
- a region (vertex weights in [0,1]) outside which nothing changes: the albedo change is multiplied by the
  region's UV mask, the shape change by its vertex mask, and only expressions that act mostly inside it move.

All arrays are in the bundle's units: metres, head frame; albedo maps sRGB uint8 (S,S,3) in and out.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..appearance import light as sh
from ..errors import Cancelled
from .cameras import head_centre
from .parts import EditInputs, EditResult, EditSettings
from .render import HeadRenderer, View, linear_to_srgb, orbit_view, srgb_to_linear

def _to_linear(rgb8: np.ndarray, size: int, device: str) -> torch.Tensor:
    t = torch.as_tensor(rgb8, device=device).permute(2, 0, 1).float() / 255.0
    if t.shape[-1] != size:
        t = F.interpolate(t[None], size=(size, size), mode="area")[0]
    return srgb_to_linear(t)


def _expression_mask(basis: np.ndarray, vertex_mask: np.ndarray | None) -> np.ndarray:
    """(E,) 1 for expressions at least half of whose motion lies inside the region, else 0."""
    if vertex_mask is None:
        return np.ones(len(basis))
    motion = np.linalg.norm(basis, axis=2)  # (E,V)
    inside = (motion * vertex_mask[None]).sum(1)
    return (inside >= 0.5 * np.maximum(motion.sum(1), 1e-12)).astype(np.float64)


def random_light(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light that mixes ``base`` with a white light from a random direction in front of the face."""
    d = rng.normal(size=3)
    d[2] = abs(d[2]) + 0.3
    other = sh.directional(d, strength=0.8, ambient=0.25)
    return 0.5 * base + 0.5 * other


def run_edit(inputs: EditInputs, settings: EditSettings, guidance, device: str = "cpu",
             report: Callable[[int, int, float], None] = lambda *a: None,
             cancelled: Callable[[], bool] = lambda: False) -> EditResult:
    """Optimise the parts named in ``settings.what`` for ``settings.steps`` steps of score distillation by
    ``guidance`` (a :class:`~likeness.edit.guidance.Guidance`; None only with 0 steps). ``report(step, steps,
    loss)`` after each step; ``cancelled()`` is checked before each step and raises :class:`Cancelled`."""
    what = set(settings.what)
    rng = np.random.default_rng(settings.seed)
    gen = torch.Generator(device=device).manual_seed(settings.seed)
    model = inputs.model
    textured = {m: i for i, m in enumerate(sorted(inputs.maps))}
    renderer = HeadRenderer(model, textured, device)
    f32 = dict(device=device, dtype=torch.float32)

    base_verts = torch.as_tensor(inputs.vertices, **f32)
    exp_basis = torch.as_tensor(model.expression_basis, **f32)
    exp0 = torch.as_tensor(inputs.expression, **f32)
    light0 = torch.as_tensor(inputs.light, **f32)
    maps0 = [_to_linear(inputs.maps[m], settings.map_size, device) for m in sorted(inputs.maps)]
    masks = []
    for m in sorted(inputs.maps):
        mask = np.ones(inputs.maps[m].shape[:2], np.float32) if inputs.texel_masks is None \
            else inputs.texel_masks.get(m, np.zeros(inputs.maps[m].shape[:2], np.float32))
        masks.append(torch.as_tensor(mask, **f32))
    small_masks = [F.interpolate(mk[None, None], size=(settings.map_size,) * 2, mode="area")[0] for mk in masks]
    vmask = torch.as_tensor(inputs.vertex_mask if inputs.vertex_mask is not None
                            else np.ones(len(inputs.vertices)), **f32)[:, None]
    emask = torch.as_tensor(_expression_mask(model.expression_basis, inputs.vertex_mask), **f32)

    shape_ok = "shape" in what and inputs.identity_basis is not None
    id_basis = torch.as_tensor(inputs.identity_basis, **f32) if shape_ok else None
    k = len(inputs.identity)
    params: dict[str, torch.Tensor] = {
        "albedo": [torch.zeros_like(m0, requires_grad="albedo" in what) for m0 in maps0],
        "shape": torch.zeros(k, requires_grad=shape_ok, **f32),
        "expression": torch.zeros(len(exp0), requires_grad="expression" in what, **f32),
        "light": torch.zeros(9, 3, requires_grad="light" in what, **f32),
    }
    lr = settings.learning_rate * (0.25 + 0.75 * settings.strength)
    groups = []
    if "albedo" in what:
        groups.append({"params": params["albedo"], "lr": lr})
    if shape_ok:
        groups.append({"params": [params["shape"]], "lr": 10 * lr})
    if "expression" in what:
        groups.append({"params": [params["expression"]], "lr": 2 * lr})
    if "light" in what:
        groups.append({"params": [params["light"]], "lr": 2 * lr})
    optimiser = torch.optim.Adam(groups) if groups else None

    def current(maps_full: bool = False):
        albedo = [(m0 + d * mk).clamp(0, 1) for m0, d, mk in zip(maps0, params["albedo"], small_masks)]
        id_now = torch.as_tensor(inputs.identity, **f32) + params["shape"]
        verts = base_verts
        if shape_ok:
            verts = verts + vmask * torch.einsum("k,kvc->vc", params["shape"], id_basis)
        weights = (exp0 + params["expression"] * emask).clamp(0, 1)
        posed = verts + torch.einsum("e,evc->vc", weights, exp_basis)
        return albedo, verts, posed, id_now, weights, light0 + params["light"]

    centre = head_centre(model, inputs.vertices)
    # a ring of cameras all around the head (0 = the front), so the edit holds from every angle
    yaws = (np.arange(settings.views) * 360.0 / settings.views + 180.0) % 360.0 - 180.0 if settings.views > 1 \
        else np.zeros(1)
    views = [orbit_view(centre, float(y), float(rng.uniform(-8, 12)), settings.size) for y in yaws]
    photo = None
    if inputs.photo_view is not None:
        cam, matrix = inputs.photo_view
        photo = View(cam, np.asarray(matrix, np.float64), settings.size)
        with torch.no_grad():
            albedo, _, posed, *_ = current()
            photo_target, photo_mask = renderer.render(photo, posed, albedo, light0)
    keep_weight = 2.0 * (1.0 - 0.8 * settings.strength)
    losses: list[float] = []
    reraster = 20 if (shape_ok or "expression" in what) else 0
    for step in range(settings.steps if optimiser is not None else 0):
        if cancelled():
            raise Cancelled()
        albedo, verts, posed, id_now, weights, light_now = current()
        if reraster and step and step % reraster == 0:
            for v in views + ([photo] if photo is not None else []):
                renderer.rasterise(v, posed.detach().cpu().numpy())
        chosen = rng.choice(len(views), size=min(settings.batch, len(views)), replace=False)
        images = []
        for i in chosen:
            lit = light_now if "light" in what else torch.as_tensor(random_light(inputs.light, rng), **f32)
            images.append(renderer.render(views[i], posed, albedo, lit)[0])
        loss = guidance.loss(torch.stack(images), [float(yaws[i]) for i in chosen],
                             (0.02, 0.5 + 0.48 * settings.strength), gen)
        if photo is not None:  # under the photo's own light, so a light edit is not pulled back to it
            image, _ = renderer.render(photo, posed, albedo, light0)
            loss = loss + keep_weight * ((image - photo_target)[:, photo_mask] ** 2).sum()
        if shape_ok:
            loss = loss + 0.1 * (params["shape"] ** 2).sum() + inputs.identity_prior * (id_now ** 2).sum()
        if "albedo" in what:
            for d in params["albedo"]:  # smooth changes: total variation
                loss = loss + 0.5 * ((d[:, 1:] - d[:, :-1]).abs().mean() + (d[:, :, 1:] - d[:, :, :-1]).abs().mean())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        report(step + 1, settings.steps, losses[-1])

    with torch.no_grad():
        _, verts, _, id_now, weights, light_now = current()
        out_maps, changes = {}, {}
        for i, m in enumerate(sorted(inputs.maps)):
            full = inputs.maps[m].shape[0]
            delta = F.interpolate(params["albedo"][i][None], size=(full, full), mode="bilinear",
                                  align_corners=False)[0] * masks[i]
            lin = srgb_to_linear(torch.as_tensor(inputs.maps[m], **f32).permute(2, 0, 1) / 255.0)
            edited = linear_to_srgb((lin + delta).clamp(0, 1))
            changed = (delta.abs().amax(0) > 0).cpu().numpy()
            new = np.round(edited.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
            out_maps[m] = np.where(changed[..., None], new, inputs.maps[m])  # untouched texels stay bit-exact
            changes[m] = delta.permute(1, 2, 0).cpu().numpy()
    return EditResult(maps=out_maps, vertices=verts.cpu().numpy().astype(np.float64),
                      identity=id_now.cpu().numpy().astype(np.float64),
                      expression=weights.cpu().numpy().astype(np.float64),
                      light=light_now.cpu().numpy().astype(np.float64), albedo_change=changes, losses=losses)
