"""Sample transforms: the training augmentation, and the runtime's exact preprocessing for
validation and test.

Every transform is called as `t(image=BGR uint8 HxWx3, mask=uint8 HxW {0,1}, ignore=...)`
and returns {"image": float32 tensor (3,h,w), "mask": float32 (1,h,w) {0,1}, "ignore": ...}.

Validation/test (`EvalTransform`) is `vbg.segmenter.preprocess` itself, the function the
runtime calls on every frame: the same area fit (aspect kept, ~height*width pixels, sides
multiples of 32), interpolation, colour order and normalisation, so a model is measured on
exactly the tensors it will see. The sizes vary with the image's aspect ratio: use batch
size 1, or `pad_collate` (which pads and marks the padding as ignored).

Training (`TrainTransform`) mimics that resize and then varies it:
1. optional copy-paste of a person cut from another training image (`CopyPaste`);
2. area fit to the card's height*width budget, times a random zoom s drawn log-uniformly
   from `scale_range` (s scales the side lengths, so the area by s^2): a 3:4 portrait and a
   16:9 webcam frame both land at about the pixel count the runtime feeds the model;
3. pad to the crop size where the image is smaller (at a random position) and take a
   random crop. The padding is the mean colour and is marked in `ignore`, as torchvision's
   segmentation reference does: reflecting instead would invent mirrored half-people with a
   seam the runtime never shows, and the loss would train on them. Keep the crop within the
   area budget (e.g. 160x256 for a 160x288 card) and padding stays rare;
4. horizontal flip, a small rotation (corners filled and ignored like the padding), colour
   jitter (on RGB);
5. the card's colour order and mean/std.

Randomness: with `seed=None` each sample's augmentation seed is drawn from torch's global
RNG. DataLoader workers seed torch differently per worker and per epoch, so workers do not
repeat each other, and `torch.manual_seed` plus a checkpointed torch RNG state reproduce a
run exactly. An integer `seed` (or `set_random_seed`) gives the transform its own generator
instead; fit.py seeds it per epoch and per worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from vbg import VbgError
from vbg.card import InputSpec

DEFAULTS: dict[str, Any] = {
    "crop": (160, 256),
    "scale_range": (0.75, 1.25),
    "hflip": 0.5,
    "color_jitter": 0.2,  # brightness/contrast/saturation +-20 %, hue +-5 % of the circle
    "rotate": 10.0,  # degrees, either way
    "copy_paste": 0.0,
}


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(name, DEFAULTS.get(name, default))
    return getattr(cfg, name, DEFAULTS.get(name, default))


def input_spec_of(cfg: Any) -> InputSpec:
    """The model card's InputSpec from an InputSpec, a config with `input_spec()`, or any
    object/dict with the InputSpec field names."""
    if isinstance(cfg, InputSpec):
        return cfg
    if hasattr(cfg, "input_spec"):
        return cfg.input_spec()
    names = ("height", "width", "fit", "multiple", "color_order", "mean", "std", "scale")
    kw = {n: _get(cfg, n) for n in names if _get(cfg, n) is not None}
    if "height" not in kw or "width" not in kw:
        raise VbgError("transform config needs the model input height and width")
    for n in ("mean", "std"):
        if n in kw:
            kw[n] = tuple(float(v) for v in kw[n])
    return InputSpec(**kw)


def resize_mask(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """A {0,1} uint8 mask resized with the image's interpolation (area when shrinking,
    linear when enlarging) and thresholded at 0.5: it stays binary and aligned with the
    image (nearest neighbour would shift it by up to half a pixel)."""
    if m.shape == (h, w):
        return m.astype(np.uint8, copy=False)
    shrink = h <= m.shape[0] and w <= m.shape[1]
    r = cv2.resize(
        m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    return (r >= 0.5).astype(np.uint8)


def _resize_image(img: np.ndarray, h: int, w: int) -> np.ndarray:
    shrink = h <= img.shape[0] and w <= img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _to_tensor(out: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    res = {
        "image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1), np.float32))
    }
    for k in ("mask", "ignore"):
        if out.get(k) is not None:
            res[k] = torch.from_numpy(out[k][None].astype(np.float32))
    return res


class PersonSource(Protocol):
    """What copy-paste draws people from (CocoPersonDataset is one)."""

    def __len__(self) -> int: ...
    def load_image(self, idx: int) -> np.ndarray: ...
    def instances(self, idx: int) -> list[np.ndarray]: ...


class CopyPaste:
    """With probability `p`, pastes one person (pixels and mask) cut from another image of
    `source` onto the sample, before the resize.

    The person keeps about the height, relative to the frame, that it had in its own photo,
    times a random factor from `scale_range` (and shrinks further if it would not fit); a
    person cut off by the bottom of its photo (a portrait's torso) is pasted against the
    bottom of this one, so no bust floats mid-air. The pasted pixels are blended over a
    slightly blurred alpha (no hard seam for the model to learn as a cue); the mask gains the
    person's binary mask and the ignore map loses it (the person occludes what was there).
    """

    def __init__(
        self,
        source: PersonSource | None = None,
        p: float = 0.5,
        scale_range: tuple[float, float] = (0.6, 1.2),
        min_pixels: int = 64,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise VbgError(f"copy_paste probability must lie in [0, 1], not {p}")
        self.source = source
        self.p = float(p)
        self.scale_range = scale_range
        self.min_pixels = min_pixels

    def bind(self, source: PersonSource) -> None:
        if self.source is None:
            self.source = source

    def _pick(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, bool] | None:
        """(image crop, mask crop, height relative to its photo, touches the photo's bottom)
        of a random person of the source, or None."""
        assert self.source is not None
        for _ in range(3):  # images without a usable person are skipped, a few tries
            j = int(rng.integers(len(self.source)))
            people = [m for m in self.source.instances(j) if int(m.sum()) >= self.min_pixels]
            if not people:
                continue
            m = people[int(rng.integers(len(people)))]
            img = self.source.load_image(j)
            if img.shape[:2] != m.shape:
                continue
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            rel_h = (y1 - y0) / m.shape[0]
            return img[y0:y1, x0:x1], m[y0:y1, x0:x1], rel_h, bool(y1 >= m.shape[0] - 1)
        return None

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, ignore: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.source is None or self.p <= 0 or len(self.source) < 1 or rng.random() >= self.p:
            return image, mask, ignore
        picked = self._pick(rng)
        if picked is None:
            return image, mask, ignore
        crop_i, crop_m, rel_h, at_bottom = picked
        H, W = mask.shape
        ch, cw = crop_m.shape
        lo, hi = self.scale_range
        s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        f = min(rel_h * H * s / ch, H / ch, W / cw)
        ph, pw = max(1, int(round(ch * f))), max(1, int(round(cw * f)))
        crop_i = _resize_image(crop_i, ph, pw)
        crop_m = resize_mask(crop_m, ph, pw)
        if rng.random() < 0.5:
            crop_i, crop_m = crop_i[:, ::-1], crop_m[:, ::-1]
        y = H - ph if at_bottom else int(rng.integers(0, H - ph + 1))
        x = int(rng.integers(0, W - pw + 1))

        alpha = cv2.GaussianBlur(crop_m.astype(np.float32), (3, 3), 0)[..., None]
        image = image.copy()
        region = image[y : y + ph, x : x + pw].astype(np.float32)
        image[y : y + ph, x : x + pw] = np.clip(
            region * (1.0 - alpha) + crop_i.astype(np.float32) * alpha + 0.5, 0, 255
        ).astype(np.uint8)
        pasted = np.zeros_like(mask)
        pasted[y : y + ph, x : x + pw] = crop_m
        return image, mask | pasted, ignore & (1 - pasted)


class TrainTransform:
    """Random area-fit zoom, pad + random crop, flip, rotation, colour jitter,
    normalisation (see the module docstring)."""

    def __init__(
        self, cfg: Any, source: PersonSource | None = None, seed: int | None = None
    ) -> None:
        import albumentations as A

        self.spec = input_spec_of(cfg)
        crop = tuple(int(v) for v in _get(cfg, "crop"))
        lo, hi = (float(v) for v in _get(cfg, "scale_range"))
        if len(crop) != 2 or min(crop) < 1 or not 0 < lo <= hi:
            raise VbgError(f"bad crop {crop} or scale_range {(lo, hi)}")
        self.crop = crop
        self.scale_range = (lo, hi)
        hflip = float(_get(cfg, "hflip"))
        jitter = float(_get(cfg, "color_jitter"))
        rotate = float(_get(cfg, "rotate"))
        # Padding and the rotated-in corners are filled with the mean colour (0 after
        # normalisation, like a convolution's zero padding) and marked as ignored: the loss
        # never trains on invented pixels. Masks travel as "valid" (1 - ignore) so that a
        # fill of 0 means "ignore" for it and "background" for the person mask.
        mean = self.spec.mean if self.spec.color_order == "RGB" else self.spec.mean[::-1]
        fill = tuple(float(m) * self.spec.scale for m in mean)  # the augmentation runs on RGB
        const = cv2.BORDER_CONSTANT
        self.aug = A.Compose(
            [
                A.PadIfNeeded(
                    min_height=crop[0],
                    min_width=crop[1],
                    position="random",
                    border_mode=const,
                    fill=fill,
                    fill_mask=0,
                ),
                A.RandomCrop(height=crop[0], width=crop[1]),
                A.HorizontalFlip(p=hflip),
                A.Affine(
                    rotate=(-rotate, rotate),
                    border_mode=const,
                    fill=fill,
                    fill_mask=0,
                    p=0.5 if rotate > 0 else 0.0,
                ),
                A.ColorJitter(
                    brightness=jitter,
                    contrast=jitter,
                    saturation=jitter,
                    hue=min(0.5, jitter / 4),
                    p=0.8 if jitter > 0 else 0.0,
                ),
            ],
            additional_targets={"valid": "mask"},
            seed=0,
        )
        self.normalize = A.Normalize(
            mean=self.spec.mean, std=self.spec.std, max_pixel_value=self.spec.scale
        )
        p = float(_get(cfg, "copy_paste") or 0.0)
        self.copy_paste = CopyPaste(source, p=p) if p > 0 else None
        self._rng = None if seed is None else np.random.default_rng(seed)

    def bind(self, source: PersonSource) -> None:
        """Called by CocoPersonDataset: copy-paste draws people from the training set."""
        if self.copy_paste is not None:
            self.copy_paste.bind(source)

    def set_random_seed(self, seed: int | None) -> None:
        """Draw the per-sample seeds from a generator seeded with `seed` (None: from torch's
        global RNG again). train/fit.py calls it per epoch and per DataLoader worker."""
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _sample_seed(self) -> int:
        if self._rng is not None:
            return int(self._rng.integers(2**31 - 1))
        import torch

        return int(torch.randint(0, 2**31 - 1, (1,)).item())

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, ignore: np.ndarray | None = None
    ) -> dict[str, Any]:
        if ignore is None:
            ignore = np.zeros_like(mask)
        seed = self._sample_seed()
        rng = np.random.default_rng(seed)
        self.aug.set_random_seed(seed)
        if self.copy_paste is not None:
            image, mask, ignore = self.copy_paste(image, mask, ignore, rng)

        h, w = mask.shape
        lo, hi = self.scale_range
        zoom = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        f = math.sqrt(self.spec.height * self.spec.width / float(h * w)) * zoom
        nh, nw = max(1, int(round(h * f))), max(1, int(round(w * f)))
        rgb = cv2.cvtColor(_resize_image(image, nh, nw), cv2.COLOR_BGR2RGB)
        valid = 1 - resize_mask(ignore, nh, nw)
        out = self.aug(image=rgb, mask=resize_mask(mask, nh, nw), valid=valid)
        img = out["image"]
        if self.spec.color_order == "BGR":
            img = img[..., ::-1]
        img = self.normalize(image=np.ascontiguousarray(img))["image"]
        return _to_tensor({"image": img, "mask": out["mask"], "ignore": 1 - out["valid"]})


class EvalTransform:
    """The runtime's preprocessing (`vbg.segmenter.preprocess`), with the masks resized to
    the model input. Evaluate at full resolution with `CocoPersonDataset.original_mask`."""

    def __init__(self, cfg: Any) -> None:
        self.spec = input_spec_of(cfg)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, ignore: np.ndarray | None = None
    ) -> dict[str, Any]:
        from vbg.segmenter import preprocess

        x = np.array(preprocess(image, self.spec), dtype=np.float32, copy=True)  # (1,3,h,w)
        h, w = x.shape[2:]
        out: dict[str, np.ndarray] = {"image": x[0].transpose(1, 2, 0)}
        if mask is not None:
            out["mask"] = resize_mask(mask, h, w)
            out["ignore"] = resize_mask(np.zeros_like(mask) if ignore is None else ignore, h, w)
        return _to_tensor(out)


def get_transform(
    train: bool, cfg: Any, source: PersonSource | None = None, seed: int | None = None
):
    """TrainTransform (augmentation, fixed crop) or EvalTransform (runtime preprocessing).

    cfg: a TrainConfig, a dict or any object with the InputSpec fields (height, width, fit,
    multiple, color_order, mean, std) and, for training, crop, scale_range, copy_paste and
    optionally hflip, color_jitter, rotate (defaults in DEFAULTS).
    """
    return TrainTransform(cfg, source=source, seed=seed) if train else EvalTransform(cfg)


def pad_collate(batch: Sequence[dict[str, Any]], multiple: int = 32) -> dict[str, Any]:
    """Batches samples of different sizes (EvalTransform output): pads each to the largest
    height/width (rounded up to `multiple`) with zeros, marks the padding as ignored, and
    records each sample's own (h, w) in "size" so predictions can be cropped back."""
    import torch

    hs = [int(b["image"].shape[1]) for b in batch]
    ws = [int(b["image"].shape[2]) for b in batch]
    H = -(-max(hs) // multiple) * multiple
    W = -(-max(ws) // multiple) * multiple
    n = len(batch)
    image = torch.zeros((n, 3, H, W), dtype=torch.float32)
    mask = torch.zeros((n, 1, H, W), dtype=torch.float32)
    ignore = torch.ones((n, 1, H, W), dtype=torch.float32)
    for i, b in enumerate(batch):
        h, w = hs[i], ws[i]
        image[i, :, :h, :w] = b["image"]
        if "mask" in b:
            mask[i, :, :h, :w] = b["mask"]
        ignore[i, :, :h, :w] = b.get("ignore", 0.0)
    out: dict[str, Any] = {
        "image": image,
        "mask": mask,
        "ignore": ignore,
        "size": list(zip(hs, ws, strict=True)),
    }
    if all("id" in b for b in batch):
        out["id"] = torch.tensor([int(b["id"]) for b in batch])
    return out
