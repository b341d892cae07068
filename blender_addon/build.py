"""Create Blender data from a validated :class:`~.bundle_io.Bundle`: head mesh, shape keys, materials, cameras.

All objects go into a new collection named after the job. Geometry is converted from the bundle's head frame
(metres, +Y up, +Z forward) to Blender (metres, +Z up, face toward -Y). Arrays are written with
``foreach_set``; there is no per-vertex Python loop. If anything fails, everything created is removed again.

The import sets the scene's render resolution, frame range and active camera for photo 1. Each camera keeps its
photo's size in ``likeness_resolution``; :func:`sync_resolution` (a ``frame_change_pre`` handler) applies it
when timeline markers switch to another photo camera.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix

import numpy as np

from . import bundle_io, convert, hair_shape, shape_names, world
from .errors import BundleError

BUNDLE_PROPERTY = "likeness_bundle"
#: Custom property of a photo camera: ``[width, height]`` of its photo in pixels.
RESOLUTION_PROPERTY = "likeness_resolution"
#: The head's UV layer (tangent-space normal maps refer to it by name).
UV_LAYER = "UVMap"


class _Created:
    """Blender data-blocks created by one import, removed together if the import fails."""

    def __init__(self) -> None:
        self.ids: list[tuple[Any, Any]] = []

    def add(self, collection: Any, datablock: Any) -> Any:
        self.ids.append((collection, datablock))
        return datablock

    def remove_all(self) -> None:
        for collection, datablock in reversed(self.ids):
            try:
                collection.remove(datablock)
            except ReferenceError:  # already freed together with its owner
                pass
        self.ids.clear()


def _head_mesh(bundle: bundle_io.Bundle, name: str) -> bpy.types.Mesh:
    """Mesh with polygons, UVs (layer 'UVMap'), material indices and smooth shading; no materials yet."""
    loop_start, loop_vertex = convert.polygon_layout(bundle.faces)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(bundle.vertices))
    mesh.vertices.foreach_set("co", convert.points_to_blender(bundle.vertices).ravel())
    mesh.loops.add(len(loop_vertex))
    mesh.loops.foreach_set("vertex_index", loop_vertex)
    mesh.polygons.add(len(bundle.faces))
    mesh.polygons.foreach_set("loop_start", loop_start)
    mesh.polygons.foreach_set("material_index", bundle.face_material)
    uv_layer = mesh.uv_layers.new(name=UV_LAYER)
    uv_layer.data.foreach_set("uv", convert.corner_uvs(bundle.faces_uv, bundle.uv).ravel())
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    return mesh


def _add_shape_keys(obj: bpy.types.Object, bundle: bundle_io.Bundle) -> None:
    """A 'Basis' key, then one key per expression (value 0, slider 0..1); absolute positions in Blender axes."""
    obj.shape_key_add(name="Basis", from_mix=False)
    basis = convert.points_to_blender(bundle.vertices)
    deltas = convert.points_to_blender(bundle.expression_deltas)
    for name, delta in zip(bundle.expression_names, deltas, strict=True):
        key = obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", (basis + delta).ravel())
        key.slider_min, key.slider_max, key.value = 0.0, 1.0, 0.0
    obj.data.shape_keys.use_relative = True


def _set_expressions(obj: bpy.types.Object, bundle: bundle_io.Bundle) -> None:
    """One photo: shape key values = its expression. Several: keyframes at frames 1, 2, ... (one per photo)."""
    blocks = obj.data.shape_keys.key_blocks
    if len(bundle.photos) == 1:
        for name, weight in zip(bundle.expression_names, bundle.photos[0].expression, strict=True):
            blocks[name].value = float(weight)
        return
    for frame, photo in enumerate(bundle.photos, start=1):
        for name, weight in zip(bundle.expression_names, photo.expression, strict=True):
            blocks[name].value = float(weight)
            blocks[name].keyframe_insert("value", frame=frame)


#: Skin scatters light under the surface: red travels furthest (radius per RGB, scaled to metres below).
SKIN_SUBSURFACE = {"Subsurface Weight": 0.15, "Subsurface Radius": (1.0, 0.35, 0.2), "Subsurface Scale": 0.004}
#: The cornea is a clear, glossy shell over the iris.
CORNEA = {"Transmission Weight": 1.0, "IOR": 1.376, "Roughness": 0.02}


#: Names of the hair-cap nodes (:func:`_hair_cap`), for scripts: the Value node's 1 shows the hair, 0 hides it.
HAIR_CAP_NODE, HAIR_MASK_NODE, HAIR_MIX_NODE = "Likeness Hair Cap", "Likeness Hair Mask", "Likeness Hair Mix"
HAIR_COLOR_NODE = "Likeness Hair Colour"
#: The hair volume (:func:`_hair_volume`): the head's Displace modifier and the vertex group that weights it.
HAIR_VOLUME_MODIFIER, HAIR_VOLUME_GROUP = "Likeness Hair Volume", "likeness_hair"


def _node_material(spec: bundle_io.Material, created: _Created,
                   hair: tuple[tuple[float, float, float], bool] | None = None) -> bpy.types.Material:
    """Principled BSDF material: albedo (sRGB), normal and roughness maps (Non-Color) where the bundle has them,
    subsurface scattering for skin, a glass-like cornea, alpha for hidden helper shells. ``hair`` (the hair's
    linear RGB, whether the cap shows) adds the hair cap where the material has a hair mask."""
    mat = created.add(bpy.data.materials, bpy.data.materials.new(spec.name))
    if mat.node_tree is None:  # Blender < 5.0 creates materials without nodes
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (300, 0)
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = spec.base_color
    bsdf.inputs["Roughness"].default_value = spec.roughness
    mat.diffuse_color = spec.base_color
    mat.roughness = spec.roughness
    maps = (("base_color", "Base Color", 300), ("roughness", "Roughness", 0), ("normal", None, -300))
    for channel, socket, y in maps:
        texture = spec.textures.get(channel)
        if texture is None:
            continue
        tex = _image_node(nodes, texture, channel == "base_color", (-600, y), created)
        if socket == "Base Color" and hair is not None and "hair_mask" in spec.textures:
            _hair_cap(mat.node_tree, tex, bsdf, spec.textures["hair_mask"], *hair, created,
                      spec.textures.get("hair_color"))
            continue
        if socket is not None:
            links.new(tex.outputs["Color"], bsdf.inputs[socket])
            continue
        normal = nodes.new("ShaderNodeNormalMap")
        normal.location = (-300, y)
        normal.space = "TANGENT"
        normal.uv_map = UV_LAYER
        links.new(tex.outputs["Color"], normal.inputs["Color"])
        links.new(normal.outputs["Normal"], bsdf.inputs["Normal"])
    if spec.kind == "skin":
        for socket, value in SKIN_SUBSURFACE.items():
            bsdf.inputs[socket].default_value = value
    if spec.kind == "cornea":
        for socket, value in CORNEA.items():
            bsdf.inputs[socket].default_value = value
        mat.diffuse_color = (*spec.base_color[:3], 0.1)
        mat.use_raytrace_refraction = True  # EEVEE: refract through the thin shell (Cycles always does)
        mat.thickness_mode = "SLAB"
        return mat
    alpha = spec.base_color[3]
    if alpha < 1.0:
        bsdf.inputs["Alpha"].default_value = alpha
        if hasattr(mat, "surface_render_method"):
            mat.surface_render_method = "BLENDED"
        mat.use_backface_culling = False
    return mat


def _image_node(nodes: Any, path: Path, srgb: bool, location: tuple[int, int], created: _Created) -> Any:
    """An Image Texture node showing the file at ``path`` (sRGB colour or Non-Color data)."""
    image = created.add(bpy.data.images, bpy.data.images.load(str(path), check_existing=False))
    image.colorspace_settings.name = "sRGB" if srgb else "Non-Color"
    tex = nodes.new("ShaderNodeTexImage")
    tex.location = location
    tex.image = image
    return tex


def _hair_cap(tree: Any, albedo: Any, bsdf: Any, mask_path: Path, color: tuple[float, float, float], show: bool,
              created: _Created, color_path: Path | None = None) -> None:
    """Base Color = the skin albedo mixed with the hair by the hair mask × the 'Hair Cap' value (1 = on); the hair
    is the bundle's hair colour texture where it has one (the photos' hair, sRGB), else its one hair colour."""
    nodes, links = tree.nodes, tree.links
    mask = _image_node(nodes, mask_path, False, (-900, 600), created)
    mask.name = mask.label = HAIR_MASK_NODE
    cap = nodes.new("ShaderNodeValue")
    cap.name, cap.label, cap.location = HAIR_CAP_NODE, "Hair Cap (1 on, 0 off)", (-900, 800)
    cap.outputs[0].default_value = 1.0 if show else 0.0
    strength = nodes.new("ShaderNodeMath")
    strength.operation, strength.use_clamp, strength.location = "MULTIPLY", True, (-600, 700)
    links.new(mask.outputs["Color"], strength.inputs[0])
    links.new(cap.outputs[0], strength.inputs[1])
    mix = nodes.new("ShaderNodeMix")
    mix.name, mix.label, mix.location = HAIR_MIX_NODE, "Hair over Skin", (-300, 400)
    mix.data_type, mix.blend_type = "RGBA", "MIX"
    socket = {s.identifier: s for s in mix.inputs}
    links.new(strength.outputs[0], socket["Factor_Float"])
    links.new(albedo.outputs["Color"], socket["A_Color"])
    socket["B_Color"].default_value = (*color, 1.0)
    if color_path is not None:
        hair = _image_node(nodes, color_path, True, (-900, 400), created)
        hair.name = hair.label = HAIR_COLOR_NODE
        links.new(hair.outputs["Color"], socket["B_Color"])
    result = next(s for s in mix.outputs if s.identifier == "Result_Color")
    links.new(result, bsdf.inputs["Base Color"])


def _mask_pixels(image: Any) -> np.ndarray:
    """A grey image's first channel ``(H, W)`` in 0..1, top row first (Blender keeps the bottom row first)."""
    width, height = image.size
    pixels = np.empty(width * height * image.channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(height, width, image.channels)[::-1, :, 0]


def _hair_volume(head: bpy.types.Object, bundle: bundle_io.Bundle, thickness: float) -> None:
    """Lift the surface where the photos saw hair by up to ``thickness`` metres along its normals.

    A vertex group (weights from the hair masks, :func:`hair_shape.vertex_hair_weights`) drives a Displace
    modifier named :data:`HAIR_VOLUME_MODIFIER` after the shape keys; its Strength is the thickness (artists can
    change it, or switch the modifier off). The hair cap's colour goes with the lifted surface."""
    masks = {}
    for index, material in enumerate(head.data.materials):
        node = material.node_tree.nodes.get(HAIR_MASK_NODE) if material.node_tree is not None else None
        if node is not None and node.image is not None:
            if node.image.size[0] * node.image.size[1] == 0:
                raise BundleError(f"The hair mask '{node.image.filepath}' could not be read.",
                                  "Import without Hair Volume, or reconstruct the bundle again.")
            masks[index] = _mask_pixels(node.image)
    if not masks:
        return
    weights = hair_shape.vertex_hair_weights(bundle.faces, bundle.faces_uv, bundle.uv, bundle.face_material, masks,
                                             len(bundle.vertices))
    group = head.vertex_groups.new(name=HAIR_VOLUME_GROUP)
    levels = np.round(weights * 64).astype(np.int64)  # one call per weight level, not per vertex
    for level in np.unique(levels[levels > 0]):
        group.add(np.flatnonzero(levels == level).tolist(), float(level) / 64.0, "REPLACE")
    modifier = head.modifiers.new(HAIR_VOLUME_MODIFIER, "DISPLACE")
    modifier.direction, modifier.mid_level, modifier.strength = "NORMAL", 0.0, float(thickness)
    modifier.vertex_group = HAIR_VOLUME_GROUP


def _camera(photo: bundle_io.Photo, index: int, name: str, created: _Created) -> bpy.types.Object:
    """Camera object reproducing the photo: pose, lens, principal point; the photo as background image."""
    cam = created.add(bpy.data.cameras, bpy.data.cameras.new(name))
    cam.sensor_fit = "AUTO"
    cam.sensor_width = convert.SENSOR_WIDTH_MM
    cam.lens = convert.camera_lens_mm(photo.focal_px, photo.width, photo.height)
    cam.shift_x, cam.shift_y = convert.camera_shift(photo.principal_point_px, photo.width, photo.height)
    cam.clip_start, cam.clip_end = 0.01, 100.0
    cam.display_size = 0.1
    image = created.add(bpy.data.images, bpy.data.images.load(str(photo.path), check_existing=False))
    background = cam.background_images.new()
    background.image = image
    background.alpha = 0.8
    cam.show_background_images = True
    obj = created.add(bpy.data.objects, bpy.data.objects.new(name, cam))
    obj.matrix_world = Matrix(convert.camera_world_matrix(photo.model_to_camera).tolist())
    obj["likeness_photo"] = str(photo.path)
    obj["likeness_photo_index"] = index
    obj[RESOLUTION_PROPERTY] = [photo.width, photo.height]
    return obj


def _marker_camera(scene: bpy.types.Scene) -> bpy.types.Object | None:
    """The camera timeline markers select for the current frame (as Blender does), else ``scene.camera``.

    During ``scene.frame_set`` Blender switches cameras only after the frame-change handlers ran.
    """
    markers = sorted((m for m in scene.timeline_markers if m.camera is not None), key=lambda m: m.frame)
    if not markers:
        return scene.camera
    reached = [m for m in markers if m.frame <= scene.frame_current]
    return (reached[-1] if reached else markers[0]).camera


@bpy.app.handlers.persistent
def sync_resolution(scene: bpy.types.Scene, depsgraph: Any = None) -> None:
    """``frame_change_pre`` handler: the render resolution of the photo camera used at this frame."""
    camera = _marker_camera(scene)
    size = camera.get(RESOLUTION_PROPERTY) if camera is not None else None
    if size is None or len(size) != 2:
        return
    width, height = int(size[0]), int(size[1])
    render = scene.render
    if width > 0 and height > 0 and (render.resolution_x, render.resolution_y) != (width, height):
        render.resolution_x, render.resolution_y = width, height


def register() -> None:
    if sync_resolution not in bpy.app.handlers.frame_change_pre:
        bpy.app.handlers.frame_change_pre.append(sync_resolution)


def unregister() -> None:
    if sync_resolution in bpy.app.handlers.frame_change_pre:
        bpy.app.handlers.frame_change_pre.remove(sync_resolution)


def _weights(bundle: bundle_io.Bundle, photo: bundle_io.Photo) -> dict[str, float]:
    """The photo's expression as {expression name: weight}, for custom properties."""
    return {name: float(w) for name, w in zip(bundle.expression_names, photo.expression, strict=True)}


def _build(bundle: bundle_io.Bundle, scene: bpy.types.Scene, created: _Created,
           hair_cap: bool = True, hair_volume: float = 0.0) -> list[bpy.types.Object]:
    collection = created.add(bpy.data.collections, bpy.data.collections.new(bundle.name))
    scene.collection.children.link(collection)
    mesh = created.add(bpy.data.meshes, _head_mesh(bundle, f"{bundle.name} head"))
    hair = (bundle.hair_color, hair_cap) if bundle.hair_color is not None else None
    for spec in bundle.materials:
        mesh.materials.append(_node_material(spec, created, hair))
    head = created.add(bpy.data.objects, bpy.data.objects.new(f"{bundle.name} head", mesh))
    collection.objects.link(head)
    _add_shape_keys(head, bundle)
    _set_expressions(head, bundle)
    if hair is not None and hair_volume > 0:
        _hair_volume(head, bundle, hair_volume)
    animation = mesh.shape_keys.animation_data
    if animation is not None and animation.action is not None:
        created.add(bpy.data.actions, animation.action)
    head["likeness_identity"] = list(bundle.identity)
    head["likeness_expression_names"] = list(bundle.expression_names)
    shape_names.apply_naming(head, shape_names.preferred_style())
    head["likeness_warnings"] = list(bundle.warnings)
    if bundle.hair_color is not None:
        head["likeness_hair_color"] = list(bundle.hair_color)
    model = bundle.manifest.get("head_model") if isinstance(bundle.manifest.get("head_model"), dict) else {}
    head["likeness_head_model"] = str(model.get("name", ""))  # e.g. flame: the sidebar flags non-commercial models
    head["likeness_license"] = str(model.get("license", ""))
    head["likeness_non_commercial"] = bool(model.get("non_commercial", False))
    if bundle.photos:
        head["likeness_expression"] = _weights(bundle, bundle.photos[0])
    cameras = []
    for k, photo in enumerate(bundle.photos):
        cam = _camera(photo, k, f"{bundle.name} photo {k + 1}", created)
        cam["likeness_expression"] = _weights(bundle, photo)
        cam["likeness_warnings"] = list(photo.warnings)
        if photo.confidence is not None:
            cam["likeness_confidence"] = photo.confidence
        if photo.light is not None:
            cam[world.LIGHT_PROPERTY] = [float(v) for v in photo.light.ravel()]
        collection.objects.link(cam)
        cameras.append(cam)
    objects = [head, *cameras]
    for obj in objects:
        obj[BUNDLE_PROPERTY] = str(bundle.root)
    if bundle.photos:
        first = bundle.photos[0]
        scene.render.resolution_x, scene.render.resolution_y = first.width, first.height
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
        scene.camera = cameras[0]
    if len(bundle.photos) > 1:
        scene.frame_start, scene.frame_end = 1, len(bundle.photos)
        for frame, cam in enumerate(cameras, start=1):
            marker = scene.timeline_markers.new(cam.name, frame=frame)
            marker.camera = cam
    return objects


def import_bundle(path: str | Path, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer | None = None,
                  hair_cap: bool = True, hair_volume: float = 0.0) -> list[bpy.types.Object]:
    """Validate the bundle at ``path`` and build it into ``scene``; returns ``[head, camera 1, ...]``.

    A bundle with hair gets the hair cap in its skin materials (the hair colour over the skin by the hair mask);
    ``hair_cap`` False builds it switched off (its 'Hair Cap' value at 0). ``hair_volume`` (metres, 0 = none)
    lifts the surface where the photos saw hair by up to that much (a Displace modifier, :func:`_hair_volume`).

    Raises :class:`BundleError` if the bundle is invalid or building fails; in both cases nothing is left in
    the file. The head becomes the active, selected object of ``view_layer`` when given.
    """
    if not hair_volume >= 0:  # NaN too
        raise BundleError(f"Hair volume {hair_volume} is not a thickness.", "Give 0 (none) or a positive length in "
                                                                             "metres, e.g. 0.012.")
    bundle = bundle_io.read_bundle(path)
    created = _Created()
    try:
        objects = _build(bundle, scene, created, hair_cap, hair_volume)
    except Exception as exc:
        traceback.print_exc()
        created.remove_all()
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"Importing the bundle '{bundle.root.name}' failed: {exc}",
                          "Nothing was imported; see the system console for details.") from exc
    if view_layer is not None:
        for obj in view_layer.objects:
            obj.select_set(False)
        view_layer.objects.active = objects[0]
        objects[0].select_set(True)
    return objects
