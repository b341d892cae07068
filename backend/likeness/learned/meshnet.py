"""MediaPipe's face-mesh network as a torch module: a backbone that has seen real photos.

MediaPipe's Face Landmarker (``face_landmarker.task``, Apache-2.0, the model the backend already uses for the
blendshape scores) holds ``face_landmarks_detector.tflite``: a convolutional network trained on real photos to
place 478 points on a face in a 256 × 256 crop. Its feature maps describe the face's shape at every scale, and were
learned from photos, not from our renders. :func:`load_meshnet` reads that file (a FlatBuffer: numbers only,
nothing executed) and rebuilds its graph in torch, so that a network can read those feature maps
(:func:`backbone_features`, traced for speed, at 128, 192 or 256 px) and train on top of them with the backbone
frozen. Not yet read by the shipped expression encoder: docs/encoder.md, "A backbone that has seen photos", says what
it gave so far.

Only the operators this network uses are supported (convolutions, depthwise convolutions, PReLU, additions, max
pooling, channel padding); any other is refused with :class:`~likeness.errors.BadInput`.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..errors import BadInput

MEMBER = "face_landmarks_detector.tflite"
INPUT = 256  # the network's input side (px) as MediaPipe runs it; colours in [0, 1]
CROP_FRACTION = 200 / 256  # the encoder's face crop fills this fraction of the input, centred on grey
FEATURE_SIDES = (2, 4, 8)  # the last 128-channel feature map at each of these sides (256 px input) is read
SIDES = (128, 192, 256)  # input sides the backbone may run at (multiples of 64: the largest map halves evenly)


def backbone_size(side: int = INPUT) -> int:
    """How many features :func:`backbone_features` gives at input ``side`` (px): the three maps are side / 128,
    side / 64 and side / 32 wide (rounded down: the last step to the smallest is unpadded), the largest averaged
    to half its side; 128 channels each."""
    a, b, c = side // 128, side // 64, side // 32
    return 128 * (a * a + b * b + (c // 2) ** 2)

# TFLite builtin operator codes and tensor types (tensorflow/lite/schema/schema.fbs)
ADD, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, MAX_POOL_2D, PAD, PRELU = 0, 3, 4, 6, 17, 34, 54
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32}
HINT = "Reinstall it: `likeness models install mediapipe-blendshapes`."


class _Table:
    """The few FlatBuffer reads the TFLite schema needs (field ``slot`` of a table at ``pos``)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        from flatbuffers.table import Table

        self.t = Table(buf, pos)

    def _off(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def scalar(self, slot: int, flags, default=0):
        o = self._off(slot)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def table(self, slot: int) -> _Table | None:
        o = self._off(slot)
        return _Table(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot: int) -> list[_Table]:
        o = self._off(slot)
        if not o:
            return []
        start = self.t.Vector(o)
        return [_Table(self.t.Bytes, self.t.Indirect(start + 4 * j)) for j in range(self.t.VectorLen(o))]

    def array(self, slot: int, flags) -> np.ndarray:
        o = self._off(slot)
        return self.t.GetVectorAsNumpy(flags, o) if o else np.zeros(0, np.int64)


def read_graph(data: bytes) -> dict:
    """The first subgraph of a TFLite model: tensors (shape, dtype, constant data or None), operators (code,
    inputs, outputs, options as a dict) and the input and output tensor indices."""
    import flatbuffers
    from flatbuffers import number_types as nt

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise BadInput("The face-mesh network is not a TFLite model.", HINT)
    model = _Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    codes = [max(c.scalar(0, nt.Int8Flags), c.scalar(3, nt.Int32Flags)) for c in model.tables(1)]
    buffers = [b.array(0, nt.Uint8Flags) for b in model.tables(4)]
    graph = model.tables(2)[0]
    tensors = []
    for t in graph.tables(0):
        shape = tuple(int(s) for s in t.array(0, nt.Int32Flags))
        kind = t.scalar(1, nt.Int8Flags)
        index = t.scalar(2, nt.Uint32Flags)
        raw = buffers[index] if index < len(buffers) else None
        value = None
        if raw is not None and raw.size and kind in _DTYPES:
            value = np.frombuffer(raw.tobytes(), _DTYPES[kind]).reshape(shape)
        tensors.append({"shape": shape, "value": value})
    ops = []
    for op in graph.tables(3):
        code = codes[op.scalar(0, nt.Uint32Flags)]
        opts = op.table(4)
        options = {}
        if opts is not None and code in (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D):
            # padding, stride (height, width) and the fused activation's slot in each options table
            options = {"padding": opts.scalar(0, nt.Int8Flags),
                       "stride": (opts.scalar(2, nt.Int32Flags), opts.scalar(1, nt.Int32Flags)),
                       "act": opts.scalar({CONV_2D: 3, DEPTHWISE_CONV_2D: 4, MAX_POOL_2D: 5}[code], nt.Int8Flags)}
            if code == MAX_POOL_2D:
                options["kernel"] = (opts.scalar(4, nt.Int32Flags), opts.scalar(3, nt.Int32Flags))
        elif opts is not None and code == ADD:
            options = {"act": opts.scalar(0, nt.Int8Flags)}
        ops.append({"code": code, "inputs": [int(i) for i in op.array(1, nt.Int32Flags)],
                    "outputs": [int(i) for i in op.array(2, nt.Int32Flags)], "options": options})
    return {"tensors": tensors, "ops": ops, "inputs": [int(i) for i in graph.array(1, nt.Int32Flags)],
            "outputs": [int(i) for i in graph.array(2, nt.Int32Flags)]}


def _same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis: the extra pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _build():
    import torch
    from torch import nn
    from torch.nn import functional as F

    def act(x, kind: int):
        if kind == 1:
            return F.relu(x)
        if kind == 3:
            return x.clamp(0.0, 6.0)
        if kind != 0:
            raise BadInput(f"The face-mesh network uses an activation ({kind}) this backend does not know.", HINT)
        return x

    def pad_same(x, kernel, stride, value=0.0):
        (top, bottom), (left, right) = (_same(x.shape[2], kernel[0], stride[0]),
                                        _same(x.shape[3], kernel[1], stride[1]))
        return F.pad(x, (left, right, top, bottom), value=value) if top or bottom or left or right else x

    class MeshNet(nn.Module):
        """MediaPipe's face-mesh network up to ``wanted`` tensors: (B, 3, 256, 256) colours in [0, 1] → those
        tensors (channels first). Constants are float32 buffers; nothing here trains."""

        def __init__(self, graph: dict, wanted: list[int]) -> None:
            super().__init__()
            tensors, ops = graph["tensors"], graph["ops"]
            const = {i: t["value"] for i, t in enumerate(tensors) if t["value"] is not None}
            for op in ops:  # float16 weights stored with a DEQUANTIZE: resolve them once
                if op["code"] == DEQUANTIZE and op["inputs"][0] in const:
                    const[op["outputs"][0]] = const[op["inputs"][0]].astype(np.float32)
            producer = {o: n for n, op in enumerate(ops) for o in op["outputs"]}
            need, todo = set(), list(wanted)
            while todo:
                t = todo.pop()
                if t in const or t not in producer or producer[t] in need:
                    continue
                need.add(producer[t])
                todo.extend(ops[producer[t]]["inputs"])
            self.plan = []
            for n in sorted(need):
                op = ops[n]
                code, ins = op["code"], op["inputs"]
                if code == DEQUANTIZE:
                    continue
                if code not in (ADD, CONV_2D, DEPTHWISE_CONV_2D, PRELU, MAX_POOL_2D, PAD):
                    raise BadInput(f"The face-mesh network uses an operator ({code}) this backend does not know.",
                                   HINT)
                params = {}
                if code == CONV_2D:
                    params["w"] = np.ascontiguousarray(const[ins[1]].transpose(0, 3, 1, 2))
                    params["b"] = const[ins[2]] if len(ins) > 2 and ins[2] >= 0 else None
                elif code == DEPTHWISE_CONV_2D:
                    params["w"] = np.ascontiguousarray(const[ins[1]].transpose(3, 0, 1, 2))
                    params["b"] = const[ins[2]] if len(ins) > 2 and ins[2] >= 0 else None
                elif code == PRELU:
                    params["alpha"] = const[ins[1]].reshape(1, -1, 1, 1)
                elif code == PAD:
                    p = const[ins[1]].astype(np.int64)  # NHWC (before, after)
                    if p[0].any():
                        raise BadInput("The face-mesh network pads its batch.", HINT)
                    params["pad"] = (int(p[2, 0]), int(p[2, 1]), int(p[1, 0]), int(p[1, 1]), int(p[3, 0]),
                                     int(p[3, 1]))
                names = {}
                for key, value in params.items():
                    if isinstance(value, np.ndarray):
                        name = f"t{n}_{key}"
                        self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, np.float32)))
                        names[key] = name
                    else:
                        names[key] = value
                self.plan.append((code, ins[0], ins[1] if code == ADD else None, op["outputs"][0],
                                  op["options"], names))
            self.input, self.wanted = graph["inputs"][0], list(wanted)

        def forward(self, image):
            values = {self.input: image}
            for code, a, b, out, opt, names in self.plan:
                x = values[a]
                if code == CONV_2D or code == DEPTHWISE_CONV_2D:
                    w = getattr(self, names["w"])
                    bias = getattr(self, names["b"]) if names.get("b") else None
                    if opt["padding"] == 0:
                        x = pad_same(x, w.shape[2:], opt["stride"])
                    groups = x.shape[1] if code == DEPTHWISE_CONV_2D else 1
                    x = act(F.conv2d(x, w, bias, opt["stride"], groups=groups), opt["act"])
                elif code == ADD:
                    x = act(x + values[b], opt.get("act", 0))
                elif code == PRELU:
                    alpha = getattr(self, names["alpha"])
                    x = x.clamp(min=0) + alpha * x.clamp(max=0)
                elif code == MAX_POOL_2D:
                    if opt["padding"] == 0:
                        x = pad_same(x, opt["kernel"], opt["stride"], float("-inf"))
                    x = act(F.max_pool2d(x, opt["kernel"], opt["stride"]), opt["act"])
                elif code == PAD:
                    x = F.pad(x, names["pad"])
                values[out] = x
            return [values[t] for t in self.wanted]

    return MeshNet


def feature_tensors(graph: dict) -> list[int]:
    """The last 128-channel PReLU output at each of :data:`FEATURE_SIDES` (for a 256 px input)."""
    last = {}
    for op in graph["ops"]:
        shape = graph["tensors"][op["outputs"][0]]["shape"]
        if op["code"] == PRELU and len(shape) == 4 and shape[3] == 128:
            last[shape[1]] = op["outputs"][0]
    if any(side not in last for side in FEATURE_SIDES):
        raise BadInput("The face-mesh network is not the one this backend was built for.", HINT)
    return [last[side] for side in FEATURE_SIDES]


def load_meshnet(task: str | Path, wanted: list[int] | None = None):
    """MediaPipe's face-mesh network from a Face Landmarker ``.task`` file (a zip) or a ``.tflite`` file, as a
    torch module in eval mode giving the ``wanted`` tensors (default: :func:`feature_tensors`); its ``digest`` is
    the network file's sha256, which a checkpoint trained on its features records."""
    path = Path(task)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = z.read(MEMBER)
        else:
            data = path.read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BadInput(f"Could not read MediaPipe's face-mesh network from {path}: {exc}", HINT) from exc
    try:
        graph = read_graph(data)
    except BadInput:
        raise
    except Exception as exc:  # a damaged FlatBuffer fails in many ways
        raise BadInput(f"{path} does not hold a readable face-mesh network: {exc}", HINT) from exc
    net = _build()(graph, wanted if wanted is not None else feature_tensors(graph))
    net.digest = hashlib.sha256(data).hexdigest()
    return net.eval()


def backbone_input(crops, side: int = INPUT):
    """(B, S, S, 3) uint8 face crops (:func:`likeness.learned.features.face_crop`) → (B, 3, side, side) in [0, 1]:
    scaled to :data:`CROP_FRACTION` of ``side`` and centred on grey, laid out as the face-mesh network expects a
    face at 256 px (a smaller ``side`` shows the same picture smaller, for speed)."""
    import torch
    from torch.nn import functional as F

    crop = round(side * CROP_FRACTION)
    x = crops.permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(crop, crop), mode="bilinear", align_corners=False)
    lo = (side - crop) // 2
    out = torch.full((len(x), 3, side, side), 128.0 / 255.0, dtype=x.dtype, device=x.device)
    out[:, :, lo:lo + crop, lo:lo + crop] = x
    return out


def traced(net, image):
    """``net`` traced and frozen for ``image``'s height and width (TorchScript; kept on ``net``): the same
    numbers as running ``net``, in about 70 % of the time on 2 CPU cores (fewer Python steps per operator)."""
    import torch

    cache = net.__dict__.setdefault("_traced", {})
    key = tuple(image.shape[2:])
    if key not in cache:
        import warnings

        with warnings.catch_warnings():  # the padding arithmetic is fixed for one size: what a trace records
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            cache[key] = torch.jit.freeze(torch.jit.trace(net, image[:1]).eval())
    return cache[key]


def backbone_features(net, crops, side: int = INPUT):
    """(B, ``backbone_size(side)``) float32: the face-mesh network's three deepest 128-channel feature maps
    of the face crops run at input ``side`` (px, one of :data:`SIDES`), the largest averaged to half its side,
    each flattened in height, width, channel order."""
    import torch
    from torch.nn import functional as F

    if side not in SIDES:
        raise BadInput(f"The face-mesh backbone runs at {', '.join(map(str, SIDES))} px, not {side}.", HINT)
    with torch.no_grad():
        image = backbone_input(crops, side)
        maps = traced(net, image)(image)
    parts = []
    for n, m in enumerate(maps):
        if n == len(maps) - 1:
            m = F.avg_pool2d(m, 2)
        parts.append(m.permute(0, 2, 3, 1).flatten(1))
    return torch.cat(parts, 1)
