"""Module definitions for legacy YOLOv5 checkpoints (MegaDetector v5 and other v5/v6.x files).

A legacy checkpoint is a pickle of a whole ``models.yolo.Model``. We never import the YOLOv5
package: :mod:`wildspace.detect.yolov5_legacy` maps the pickled class names onto the classes
here, which keep the attribute names the pickles carry (``conv``, ``bn``, ``act``, ``cv1`` …,
``f``/``i`` on every layer, ``anchors`` in stride units on ``Detect``). Objects restored from a
pickle skip ``__init__``, so ``forward`` only uses pickled attributes.

Configs follow the YOLOv5 yaml layout (backbone/head rows of ``[from, repeats, module, args]``)
so random-weight models of the real architectures can be built for tests and training.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

from wildspace.errors import UsageError


def autopad(k: int, p: int | None = None) -> int:
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU; after :func:`fuse` the BN is folded in."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = getattr(self, "bn", None)
        x = self.conv(x)
        return self.act(bn(x) if bn is not None else x)


class Focus(nn.Module):
    """Space-to-depth then Conv (YOLOv5 before v6.0)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, act: bool = True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2],
                                    x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1,
                 e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPP(nn.Module):
    def __init__(self, c1: int, c2: int, k: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPF(nn.Module):
    """Fast spatial pyramid pooling: one max-pool applied three times."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


class Detect(nn.Module):
    """Anchor-based YOLOv5 head.

    ``anchors`` (buffer, ``nl x na x 2``) is stored in units of each level's stride, as in
    the checkpoints. In eval mode the output is ``(B, N, 5 + nc)`` rows of
    ``[cx, cy, w, h`` (input px)``, objectness, class probabilities...]``.
    """

    anchors: torch.Tensor  # a registered buffer

    def __init__(self, nc: int = 80, anchors: tuple = (), ch: tuple[int, ...] = ()):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.grid = [torch.empty(0)] * self.nl
        self.anchor_grid = [torch.empty(0)] * self.nl
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.stride = torch.ones(self.nl)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.inplace = True

    def forward(self, xs: list[torch.Tensor]):
        outs, decoded = [], []
        for i in range(self.nl):
            x = self.m[i](xs[i])
            bs, _, ny, nx = x.shape
            x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            outs.append(x)
            if self.training:
                continue
            stride = float(self.stride[i])
            yv, xv = torch.meshgrid(torch.arange(ny, device=x.device, dtype=x.dtype),
                                    torch.arange(nx, device=x.device, dtype=x.dtype), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2)
            anchor_wh = (self.anchors[i].to(x.dtype) * stride).view(1, self.na, 1, 1, 2)
            y = x.sigmoid()
            xy = (y[..., 0:2] * 2 - 0.5 + grid) * stride
            wh = (y[..., 2:4] * 2) ** 2 * anchor_wh
            decoded.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return outs if self.training else (torch.cat(decoded, 1), outs)


class Model(nn.Module):
    """The YOLOv5 detection model (``models.yolo.Model`` / ``DetectionModel`` in pickles)."""

    def __init__(self, cfg: dict[str, Any], ch: int = 3, nc: int | None = None):
        super().__init__()
        self.yaml = dict(cfg)
        if nc is not None:
            self.yaml["nc"] = nc
        self.model, self.save = parse_model(self.yaml, ch)
        self.names = [str(i) for i in range(self.yaml["nc"])]
        self.inplace = True
        head = cast(Detect, self.model[-1])  # parse_model ends every model with its Detect head
        s = 256
        with torch.no_grad():
            head.stride = torch.tensor([s / x.shape[-2] for x in self.forward_train(torch.zeros(1, ch, s, s))])
        head.anchors /= head.stride.view(-1, 1, 1)
        self.stride = head.stride
        for mi, st in zip(head.m, head.stride):  # YOLOv5's prior for objectness/class biases
            b = cast(torch.Tensor, mi.bias).view(head.na, -1)  # the head's 1x1 convs have biases
            b.data[:, 4] += math.log(8 / (640 / st) ** 2)
            b.data[:, 5:] += math.log(0.6 / (head.nc - 0.99))

    def forward_train(self, x: torch.Tensor):
        was = self.training
        self.train()
        try:
            return self._run(x)
        finally:
            self.train(was)

    def _run(self, x: torch.Tensor):
        y: list[torch.Tensor | None] = []
        out: Any = x  # a layer's input: a tensor, or the list of tensors Concat / Detect take
        for m in self.model:
            if m.f != -1:  # ``f``/``i``: set on every layer by parse_model or the pickle
                out = (y[m.f] if isinstance(m.f, int)  # type: ignore[index]
                       else [out if j == -1 else y[j] for j in m.f])  # type: ignore[union-attr]
            out = m(out)
            y.append(out if m.i in self.save else None)
        return out

    def forward(self, x: torch.Tensor):
        return self._run(x)


def make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


_BLOCKS = {"Conv": Conv, "Focus": Focus, "Bottleneck": Bottleneck, "C3": C3, "SPP": SPP, "SPPF": SPPF}


def parse_model(cfg: dict[str, Any], ch_in: int = 3) -> tuple[nn.Sequential, list[int]]:
    """Build the layer list from a YOLOv5-layout config dict."""
    nc, gd, gw = cfg["nc"], cfg["depth_multiple"], cfg["width_multiple"]
    anchors = cfg["anchors"]
    ch = [ch_in]
    layers: list[nn.Module] = []
    save: list[int] = []
    for i, (f, n, name, args) in enumerate(cfg["backbone"] + cfg["head"]):
        n = max(round(n * gd), 1) if n > 1 else n
        args = list(args)
        if name in _BLOCKS:
            c1, c2 = ch[f], make_divisible(args[0] * gw, 8)
            args = [c1, c2, *args[1:]]
            if name == "C3":
                args.insert(2, n)
                n = 1
            cls = _BLOCKS[name]
        elif name == "Upsample":
            cls, c2 = nn.Upsample, ch[f]
        elif name == "Concat":
            cls, c2 = Concat, sum(ch[x] for x in f)
        elif name == "Detect":
            cls, c2 = Detect, None
            args = [nc, anchors, [ch[x] for x in f]]
        else:
            raise UsageError(f"unsupported YOLOv5 layer '{name}'; supported: "
                             f"{', '.join([*_BLOCKS, 'Upsample', 'Concat', 'Detect'])}")
        m = nn.Sequential(*(cls(*args) for _ in range(n))) if n > 1 else cls(*args)
        m.i, m.f, m.type = i, f, name  # type: ignore[method-assign]  # upstream's layer attributes
        m.np = sum(p.numel() for p in m.parameters())
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m)
        if i == 0:
            ch = []
        ch.append(c2)  # type: ignore[arg-type]  # None only for Detect, the last layer
    return nn.Sequential(*layers), sorted(save)


def _rows_p5() -> tuple[list, list]:
    backbone = [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]],
                [-1, 1, "SPPF", [1024, 5]]]
    up = [None, 2, "nearest"]
    head = [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "Upsample", up], [[-1, 6], 1, "Concat", [1]],
            [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "Upsample", up],
            [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]],
            [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]],
            [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],
            [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]]
    return backbone, head


def _rows_p6() -> tuple[list, list]:
    backbone = [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 9, "C3", [512]], [-1, 1, "Conv", [768, 3, 2]], [-1, 3, "C3", [768]],
                [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], [-1, 1, "SPPF", [1024, 5]]]
    up = [None, 2, "nearest"]
    head = [[-1, 1, "Conv", [768, 1, 1]], [-1, 1, "Upsample", up], [[-1, 8], 1, "Concat", [1]],
            [-1, 3, "C3", [768, False]], [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "Upsample", up],
            [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]],
            [-1, 1, "Upsample", up], [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]],
            [-1, 1, "Conv", [256, 3, 2]], [[-1, 20], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
            [-1, 1, "Conv", [512, 3, 2]], [[-1, 16], 1, "Concat", [1]], [-1, 3, "C3", [768, False]],
            [-1, 1, "Conv", [768, 3, 2]], [[-1, 12], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],
            [[23, 26, 29, 32], 1, "Detect", ["nc", "anchors"]]]
    return backbone, head


ANCHORS_P5 = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
ANCHORS_P6 = [[19, 27, 44, 40, 38, 94], [96, 68, 86, 152, 180, 137],
              [140, 301, 303, 264, 238, 542], [436, 615, 739, 380, 925, 792]]
SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def yolov5_config(variant: str, nc: int) -> dict[str, Any]:
    """Config for ``yolov5{n,s,m,l,x}`` (P5, stride 32) or ``…6`` (P6, stride 64, e.g. ``x6``
    as in MegaDetector v5)."""
    p6 = variant.endswith("6")
    scale = variant[:-1] if p6 else variant
    if scale not in SCALES:
        raise UsageError(f"unknown YOLOv5 variant '{variant}'; choose from "
                         f"{', '.join(list(SCALES) + [s + '6' for s in SCALES])}")
    gd, gw = SCALES[scale]
    backbone, head = _rows_p6() if p6 else _rows_p5()
    return {"nc": nc, "depth_multiple": gd, "width_multiple": gw,
            "anchors": ANCHORS_P6 if p6 else ANCHORS_P5, "backbone": backbone, "head": head}


def fuse(model: nn.Module) -> nn.Module:
    """Fold every Conv's BatchNorm into its convolution (inference only)."""
    for m in model.modules():
        if isinstance(m, Conv) and getattr(m, "bn", None) is not None:
            m.conv = _fuse_conv_bn(m.conv, m.bn)
            del m.bn
    return model


def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    if bn.running_mean is None or bn.running_var is None:
        raise UsageError("cannot fold a BatchNorm without running statistics into its convolution")
    # Conv2d's attributes are typed tuple[int, ...]; its constructor wants tuple[int, int]
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                      conv.stride, conv.padding, conv.dilation,  # type: ignore[arg-type]
                      conv.groups, bias=True).to(conv.weight.device)
    w = conv.weight.detach().reshape(conv.out_channels, -1)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.data.copy_((torch.diag(scale) @ w).view(fused.weight.shape))
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
    fused_bias = cast(torch.Tensor, fused.bias)  # made with bias=True
    fused_bias.data.copy_(bn.bias.detach() + scale * (b - bn.running_mean))
    return fused
