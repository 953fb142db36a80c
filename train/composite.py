"""Synthetic training data: labelled people pasted on background photos, and moving clips.

`python -m train composite --ann CORPUS.json --images ROOT --out data/composites`

- **Composites** (`source: composite`): one to four person cut-outs from the labelled set,
  each rescaled, flipped, re-coloured and re-lit, pasted onto a background with a feathered
  edge; then global lighting, blur (focus or motion), sensor noise and JPEG compression. A
  person cut by the bottom of its photo (a portrait's torso) is pasted against the bottom
  edge, so no bust floats. Kinds: portrait (one bust), fullbody (one whole person),
  multi (several, later ones occluding earlier ones; the masks say who is in front).
- **Clips** (`source: synclip`, kind video, one `group` per clip): the same person moving
  over a background along a smooth random path (position, scale, slight tilt) while the
  "camera" pans slowly; for temporal training and flicker evaluation.

Only the training side of the grouped split (`train/split.py`, same seed and fractions as
`train fit`) is cut from, so no person of the validation or test split reaches a composite.
Backgrounds are photos given with `--backgrounds` (the bundled ones and
/work/shared/backgrounds by default) and person-free crops of training photos.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vbg import VbgError

BG_DIRS = ("assets/backgrounds", "../shared/backgrounds")
CANVASES = ((288, 512), (360, 270), (320, 320), (270, 480))  # (h, w): 16:9, 3:4, 1:1


@dataclass
class Person:
    image: np.ndarray  # BGR crop around the person
    mask: np.ndarray  # uint8 {0,1}, same size
    at_bottom: bool  # cut off by the bottom of its photo
    origin: int  # image id in the source set


@dataclass
class CompositeConfig:
    n_images: int = 6000
    n_clips: int = 60
    clip_frames: int = 24
    seed: int = 0
    max_side: int = 512  # cut-outs are stored at most this large (training runs far below)


# ------------------------------------------------------------------------ inputs


def training_ids(dataset: dict, seed: int = 0) -> list[int]:
    """The ids of the training side of `train fit`'s grouped split of this set."""
    from train.split import grouped_split

    return grouped_split(dataset["images"], seed=seed)["train"]


def load_people(coco, root: Path, ids: list[int], max_side: int) -> list[Person]:
    """Every non-crowd person of the given images at least 2% of its photo, cropped."""
    from train.data import load_image

    people = []
    for i in ids:
        anns = [a for a in coco.imgToAnns.get(i, []) if a["category_id"] == 1]
        if not anns or any(a.get("iscrowd") for a in anns):
            continue  # crowd regions have no clean outline to cut along
        img = load_image(root / coco.imgs[i]["file_name"])
        h, w = img.shape[:2]
        for a in anns:
            m = coco.annToMask(a)
            if m.sum() < 0.02 * h * w:
                continue
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            crop_i, crop_m = img[y0:y1, x0:x1], m[y0:y1, x0:x1]
            f = min(1.0, max_side / max(crop_m.shape))
            if f < 1.0:
                size = (max(1, int(crop_m.shape[1] * f)), max(1, int(crop_m.shape[0] * f)))
                crop_i = cv2.resize(crop_i, size, interpolation=cv2.INTER_AREA)
                crop_m = cv2.resize(crop_m, size, interpolation=cv2.INTER_NEAREST)
            people.append(Person(crop_i, crop_m, bool(y1 >= h - 1), int(i)))
    return people


def load_backgrounds(dirs: list[Path]) -> list[np.ndarray]:
    from train.data import load_image

    out = []
    seen: set[str] = set()  # the bundled photos are also in the shared folder
    for d in dirs:
        for p in sorted(d.glob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and p.name not in seen:
                seen.add(p.name)
                img = load_image(p)
                f = min(1.0, 1280 / max(img.shape[:2]))
                out.append(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA))
    return out


def person_free_crops(coco, root: Path, ids: list[int], rng: np.random.Generator) -> list:
    """Crops of training photos that hold no labelled person (< 0.5% of the crop): real
    streets and rooms to paste onto, beside the landmark photos."""
    from train.data import load_image, person_mask

    out = []
    for i in ids:
        mask, crowd = person_mask(coco, i)
        if crowd.any():
            continue
        m = mask.astype(np.float32)
        h, w = m.shape
        integral = cv2.integral(m)
        for _ in range(6):
            ch = int(h * rng.uniform(0.3, 0.6))
            cw = int(min(w, ch * rng.uniform(0.75, 1.78)))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            s = (
                integral[y + ch, x + cw]
                - integral[y, x + cw]
                - integral[y + ch, x]
                + integral[y, x]
            )
            if s < 0.005 * ch * cw and min(ch, cw) >= 96:
                out.append(load_image(root / coco.imgs[i]["file_name"])[y : y + ch, x : x + cw])
                break
    return out


# ------------------------------------------------------------------------ image ops


def background_view(bg: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (zoom 1-2.5x, any position, maybe mirrored) of bg, resized to h x w."""
    bh, bw = bg.shape[:2]
    zoom = rng.uniform(1.0, 2.5)
    ch = min(bh, bw * h / w) / zoom
    cw = ch * w / h
    y, x = rng.uniform(0, bh - ch), rng.uniform(0, bw - cw)
    return crop_resize(bg, (y, x, ch, cw), h, w, flip=bool(rng.random() < 0.5))


def crop_resize(img: np.ndarray, box, h: int, w: int, flip: bool = False) -> np.ndarray:
    y, x, ch, cw = box
    m = np.array([[w / cw, 0, -x * w / cw], [0, h / ch, -y * h / ch]], np.float32)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out[:, ::-1].copy() if flip else out


def recolour(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Brightness, contrast, saturation, hue and colour-temperature shifts."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6) * strength) % 180
    hsv[..., 1] *= 1 + rng.uniform(-0.3, 0.3) * strength
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    gain = 1 + rng.uniform(-0.25, 0.25, 3) * strength * np.array([0.3, 0.1, 0.3])  # warm/cool
    contrast = 1 + rng.uniform(-0.25, 0.25) * strength
    bright = rng.uniform(-30, 30) * strength
    out = (out - 128) * contrast + 128 + bright
    return np.clip(out * gain, 0, 255).astype(np.uint8)


def lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth light gradient across the frame (a window on one side, a lamp...)."""
    h, w = img.shape[:2]
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang))[..., None]
    out = img.astype(np.float32) * (1 + rng.uniform(0, 0.5) * ramp)
    return np.clip(out, 0, 255).astype(np.uint8)


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera faults: defocus or motion blur, sensor noise, JPEG artefacts (later, on save)."""
    r = rng.random()
    if r < 0.2:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    elif r < 0.35:
        k = int(rng.integers(3, 9))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return img


def place(
    canvas: np.ndarray,
    masks: list[np.ndarray],
    person: Person,
    height: float,
    cx: float,
    rng: np.random.Generator | None,
    angle: float = 0.0,
    flip: bool = False,
    y_top: float | None = None,
) -> np.ndarray:
    """Pastes `person` `height` (in canvas heights) tall, centred at x = cx (0..1), onto
    canvas in place; earlier masks lose what it covers. Returns its mask on the canvas."""
    H, W = canvas.shape[:2]
    ph, pw = person.mask.shape
    f = height * H / ph
    img, m = person.image, person.mask
    if flip:
        img, m = img[:, ::-1], m[:, ::-1]
    if rng is not None:
        img = recolour(img, rng, 0.6)
    if person.at_bottom:
        ty = H - ph * f  # torso on the bottom edge
    elif y_top is not None:
        ty = y_top * H
    else:
        ty = rng.uniform(0, max(0.0, H - ph * f)) if rng is not None else 0.0
    tx = cx * W - pw * f / 2
    a = np.array([[f, 0, tx], [0, f, ty]], np.float32)
    if angle:
        rot = cv2.getRotationMatrix2D((cx * W, ty + ph * f), angle, 1.0)
        a = rot @ np.vstack([a, [0, 0, 1]])
    warped_i = cv2.warpAffine(np.ascontiguousarray(img), a, (W, H), flags=cv2.INTER_LINEAR)
    soft = cv2.warpAffine(
        np.ascontiguousarray(m).astype(np.float32), a, (W, H), flags=cv2.INTER_LINEAR
    )
    hard = (soft >= 0.5).astype(np.uint8)
    if person.at_bottom:
        # The cut at the photo's bottom edge must stay on the canvas's bottom edge.
        hard[-1:] |= hard[-2:-1]
    alpha = cv2.GaussianBlur(soft, (3, 3), 0)[..., None]
    canvas[:] = np.clip(canvas * (1 - alpha) + warped_i * alpha + 0.5, 0, 255).astype(np.uint8)
    for prev in masks:
        prev &= 1 - hard
    return hard


# ------------------------------------------------------------------------ generators


def make_composite(
    people: list[Person], bgs: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray], str, list[int]]:
    """(image, person masks, kind, origin ids) of one random composite."""
    H, W = CANVASES[int(rng.integers(len(CANVASES)))]
    canvas = recolour(background_view(bgs[int(rng.integers(len(bgs)))], H, W, rng), rng)
    n = int(rng.choice([1, 1, 2, 3, 4]))
    masks: list[np.ndarray] = []
    origins = []
    first_at_bottom = False
    for k in range(n):
        p = people[int(rng.integers(len(people)))]
        if n == 1:
            height = rng.uniform(0.55, 1.0) if p.at_bottom else rng.uniform(0.3, 0.95)
        else:
            height = rng.uniform(0.25, 0.75)
        m = place(canvas, masks, p, height, rng.uniform(0.1, 0.9), rng, flip=rng.random() < 0.5)
        masks.append(m)
        origins.append(p.origin)
        first_at_bottom = first_at_bottom or (k == 0 and p.at_bottom)
    canvas = degrade(lighting(canvas, rng), rng)
    keep = [m for m in masks if m.sum() >= 0.002 * H * W]
    kind = "multi" if len(keep) > 1 else "portrait" if first_at_bottom else "fullbody"
    return canvas, keep, kind, origins


def smooth_path(n: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """n values in [lo, hi] along a smooth random path: a sum of slow sinusoids (at most one
    cycle per 48 frames), so the speed per frame is bounded whatever the clip's length."""
    t = np.arange(n) / 48.0
    amps = rng.uniform(0.3, 1.0, 3)
    v = (
        sum(a * np.sin(2 * math.pi * (rng.uniform(0.2, 1.0) * t + rng.random())) for a in amps)
        / amps.sum()
    )  # in [-1, 1]
    span = rng.uniform(0.2, 1.0) * (hi - lo)
    centre = rng.uniform(lo + span / 2, hi - span / 2)
    return centre + v * span / 2


def make_clip(
    people: list[Person], bgs: list[np.ndarray], n_frames: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frames (image, mask) of one person moving smoothly over a slowly panning background."""
    H, W = CANVASES[int(rng.integers(len(CANVASES)))]
    bg = recolour(bgs[int(rng.integers(len(bgs)))], rng)
    bh, bw = bg.shape[:2]
    p = people[int(rng.integers(len(people)))]
    flip = bool(rng.random() < 0.5)
    cx = smooth_path(n_frames, rng, 0.25, 0.75)
    hh = (
        smooth_path(n_frames, rng, 0.6, 1.0)
        if p.at_bottom
        else smooth_path(n_frames, rng, 0.35, 0.9)
    )
    tilt = smooth_path(n_frames, rng, -6, 6)
    top = smooth_path(n_frames, rng, 0.0, 0.1)
    zoom = rng.uniform(1.1, 1.6)
    ch = min(bh, bw * H / W) / zoom
    cw = ch * W / H
    py, px = smooth_path(n_frames, rng, 0, bh - ch), smooth_path(n_frames, rng, 0, bw - cw)
    light_seed = int(rng.integers(1 << 31))
    noise_sigma = rng.uniform(0, 6)
    frames = []
    for t in range(n_frames):
        canvas = crop_resize(bg, (py[t], px[t], ch, cw), H, W)
        y_top = min(top[t], max(0.0, 1 - hh[t]))
        m = place(canvas, [], p, hh[t], cx[t], None, angle=tilt[t], flip=flip, y_top=y_top)
        canvas = lighting(canvas, np.random.default_rng(light_seed))  # steady light per clip
        if noise_sigma > 1:
            noise = rng.normal(0, noise_sigma, canvas.shape).astype(np.float32)
            canvas = np.clip(canvas.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        frames.append((canvas, m))
    return frames


def generate(coco, root: Path, bg_dirs: list[Path], out: Path, cfg: CompositeConfig) -> dict:
    """Writes out/images/..., out/composites.json and out/synclips.json; returns counts."""
    from train.sources.cocowriter import CocoWriter

    rng = np.random.default_rng(cfg.seed)
    ids = training_ids(coco.dataset, cfg.seed)
    people = load_people(coco, root, ids, cfg.max_side)
    if not people:
        raise VbgError("no person large enough to cut out in the training split")
    bgs = load_backgrounds([d for d in bg_dirs if d.is_dir()])
    n_photo_bgs = len(bgs)
    bgs += person_free_crops(coco, root, ids, rng)
    print(
        f"composite: {len(people)} people from {len(ids)} training images; "
        f"{n_photo_bgs} background photos + {len(bgs) - n_photo_bgs} person-free crops",
        flush=True,
    )
    (out / "images" / "composite").mkdir(parents=True, exist_ok=True)
    comp = CocoWriter("vbg synthetic composites (people from the training split)")
    for k in range(cfg.n_images):
        img, masks, kind, origins = make_composite(people, bgs, rng)
        name = f"images/composite/{k:06d}.jpg"
        cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
        comp.add(name, img.shape[:2], masks, source="composite", kind=kind, origin=origins)
        if (k + 1) % 1000 == 0:
            print(f"composite: {k + 1}/{cfg.n_images} images", flush=True)
    comp.write(out / "composites.json")
    clips = CocoWriter("vbg synthetic clips (people from the training split)")
    for c in range(cfg.n_clips):
        d = out / "images" / "synclip" / f"{c:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for t, (img, m) in enumerate(make_clip(people, bgs, cfg.clip_frames, rng)):
            name = f"images/synclip/{c:04d}/{t:05d}.jpg"
            cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            clips.add(
                name, img.shape[:2], [m], source="synclip", group=f"synclip/{c:04d}", kind="video"
            )
    clips.write(out / "synclips.json")
    return {"composites": len(comp), "clip_frames": len(clips), "clips": cfg.n_clips}


# ------------------------------------------------------------------------ CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ann", required=True, help="COCO person set to cut people from")
    p.add_argument("--images", required=True, help="its image root")
    p.add_argument(
        "--out", required=True, help="output folder (images/, composites.json, synclips.json)"
    )
    p.add_argument(
        "--backgrounds",
        nargs="*",
        help=f"folders of background photos (default: {', '.join(BG_DIRS)})",
    )
    p.add_argument("--n-images", type=int, default=CompositeConfig.n_images)
    p.add_argument("--n-clips", type=int, default=CompositeConfig.n_clips)
    p.add_argument("--clip-frames", type=int, default=CompositeConfig.clip_frames)
    p.add_argument("--seed", type=int, default=0, help="also the split seed of `train fit`")


def run(args: argparse.Namespace) -> int:
    from train.data import load_coco

    cfg = CompositeConfig(args.n_images, args.n_clips, args.clip_frames, args.seed)
    dirs = [Path(d) for d in (args.backgrounds if args.backgrounds is not None else BG_DIRS)]
    counts = generate(load_coco(args.ann), Path(args.images), dirs, Path(args.out), cfg)
    print(f"composite: wrote {counts} to {args.out}")
    return 0
