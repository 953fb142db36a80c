"""COCO person segmentation: images and their person-vs-background targets.

The target of an image is the union of its category-1 ("person") annotations, polygons and
RLE alike, decoded with pycocotools exactly as COCO's own tools decode them.

Crowd regions (`iscrowd: 1`, one RLE over a group of people COCO did not outline one by
one) are handled by `crowd=`:

- "person" (default): crowd pixels are person. COCO's panoptic "person" segment includes
  them, and at runtime a crowd behind the user should not be composited half-away.
- "ignore": crowd pixels that no individual person covers go into the `ignore` map, and the
  loss skips them; the model is then neither rewarded nor punished there.

Images without any person annotation are kept at `empty_fraction` (a seeded choice, so the
same ids and seed keep the same images); `max_images` then caps the set (also seeded), which
is how the reference "64k-image subset" of COCO 2017 is drawn.

Images are read as BGR uint8 with OpenCV, like the runtime's frames, and EXIF orientation
is ignored: COCO's width/height and masks are in the stored pixel orientation.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vbg import VbgError

if TYPE_CHECKING:
    from pycocotools.coco import COCO

PERSON = 1
CROWD_MODES = ("person", "ignore")


def load_image(path: str | Path) -> np.ndarray:
    """BGR uint8 HxWx3, as the runtime sees frames (grayscale files become 3 channels)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise VbgError(f"cannot read image {path}")
    return img


def load_coco(ann_file: str | Path) -> COCO:
    """pycocotools' COCO index of an annotation file (its progress prints silenced)."""
    try:
        from pycocotools.coco import COCO
    except ImportError as e:
        raise VbgError("train needs pycocotools: pip install -e '.[train]'") from e
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise VbgError(f"annotation file {ann_file} does not exist")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann_file))


def person_mask(coco: COCO, img_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, crowd): uint8 HxW {0,1} unions of the image's category-1 annotations, the
    individual people in `mask` and the crowd regions in `crowd`."""
    info = coco.imgs[img_id]
    h, w = int(info["height"]), int(info["width"])
    mask = np.zeros((h, w), np.uint8)
    crowd = np.zeros((h, w), np.uint8)
    for ann in coco.imgToAnns.get(img_id, []):
        if ann.get("category_id") != PERSON:
            continue
        m = annotation_mask(ann, h, w)
        if m is None:
            continue
        target = crowd if ann.get("iscrowd") else mask
        target |= m
    return mask, crowd


SKIPPED_ANNOTATIONS: set[Any] = set()  # ids skipped by annotation_mask (in this process)


def unusable_annotations(coco: COCO, ids: Sequence[int]) -> list[Any]:
    """Ids of the person annotations of `ids` that will be skipped (what `train check`
    reports as skipped), found once up front so the run can say how many."""
    from train.check import decode_segmentation

    bad = []
    for img_id in ids:
        info = coco.imgs[img_id]
        h, w = int(info["height"]), int(info["width"])
        for ann in coco.imgToAnns.get(img_id, []):
            if ann.get("category_id") != PERSON:
                continue
            try:
                decode_segmentation(ann.get("segmentation"), h, w)
            except (ValueError, IndexError, TypeError):
                bad.append(ann.get("id"))
    return bad


def annotation_mask(ann: dict[str, Any], h: int, w: int) -> np.ndarray | None:
    """The annotation's uint8 HxW {0,1} mask, or None for one that `train check` reports as
    skipped (a 2-point polygon, RLE of another size...): skipped and counted, with one
    warning per annotation, instead of a crash in the middle of an epoch."""
    from train.check import decode_segmentation

    try:
        return decode_segmentation(ann.get("segmentation"), h, w)
    except (ValueError, IndexError, TypeError) as e:
        key = ann.get("id")
        if key not in SKIPPED_ANNOTATIONS:
            SKIPPED_ANNOTATIONS.add(key)
            print(f"train: skipped annotation {key} of image {ann.get('image_id')}: {e}")
        return None


def note_skipped(ids: Sequence[Any]) -> None:
    """Annotations already reported (by unusable_annotations): no per-item line for them."""
    SKIPPED_ANNOTATIONS.update(ids)


def has_person(coco: COCO, img_id: int) -> bool:
    return any(a.get("category_id") == PERSON for a in coco.imgToAnns.get(img_id, []))


def select_ids(
    coco: COCO,
    image_ids: Sequence[int] | None = None,
    *,
    empty_fraction: float = 1.0,
    max_images: int | None = None,
    seed: int = 0,
) -> list[int]:
    """The ids a dataset keeps, in the order given (ascending when `image_ids` is None).

    The choices are made on sorted ids, so they do not depend on the order of the json or of
    `image_ids`; the same ids and seed always keep the same images.
    """
    ids = sorted(coco.imgs) if image_ids is None else [int(i) for i in image_ids]
    unknown = [i for i in ids if i not in coco.imgs]
    if unknown:
        raise VbgError(f"{len(unknown)} image ids are not in the annotations, e.g. {unknown[:5]}")
    if not 0.0 <= empty_fraction <= 1.0:
        raise VbgError(f"empty_fraction must be within [0, 1], not {empty_fraction}")
    rng = np.random.default_rng(seed)
    empty = sorted(i for i in set(ids) if not has_person(coco, i))
    n_keep = int(round(empty_fraction * len(empty)))
    drop = set(empty) - {int(i) for i in rng.permutation(np.array(empty, dtype=np.int64))[:n_keep]}
    kept = sorted(set(ids) - drop)
    if max_images is not None and len(kept) > max_images:
        if max_images < 1:
            raise VbgError(f"max_images must be at least 1, not {max_images}")
        kept = sorted(int(i) for i in rng.permutation(np.array(kept, dtype=np.int64))[:max_images])
    keep = set(kept)
    return [i for i in dict.fromkeys(ids) if i in keep]


class CocoPersonDataset:
    """Person-vs-background samples of a COCO annotation file (a torch map-style dataset).

    `transform(image=BGR uint8, mask=uint8 {0,1}, ignore=uint8 {0,1})` returns a dict with
    "image" float32 (3,h,w), "mask" and "ignore" float32 (1,h,w); see train/transforms.py.
    Without a transform the item holds the raw sample as tensors (image BGR / 255).
    Each item: {"image", "mask", "ignore", "id"}.
    """

    def __init__(
        self,
        ann_file: str | Path | COCO,
        images_root: str | Path,
        image_ids: Sequence[int] | None = None,
        transform: Callable[..., dict[str, Any]] | None = None,
        *,
        empty_fraction: float = 1.0,
        crowd: str = "person",
        seed: int = 0,
        max_images: int | None = None,
    ) -> None:
        if crowd not in CROWD_MODES:
            raise VbgError(f"crowd must be one of {', '.join(CROWD_MODES)}, not {crowd!r}")
        self.coco = ann_file if hasattr(ann_file, "imgToAnns") else load_coco(ann_file)
        self.images_root = Path(images_root)
        self.crowd = crowd
        self.ids = select_ids(
            self.coco, image_ids, empty_fraction=empty_fraction, max_images=max_images, seed=seed
        )
        self.transform = transform
        # A training transform with copy-paste draws people from this dataset's images.
        if transform is not None and hasattr(transform, "bind"):
            transform.bind(self)

    def __len__(self) -> int:
        return len(self.ids)

    def image_info(self, idx: int) -> dict[str, Any]:
        """id, file_name, path, source, group (own id when absent), width, height."""
        info = self.coco.imgs[self.ids[idx]]
        return {
            "id": int(info["id"]),
            "file_name": info["file_name"],
            "path": self.images_root / info["file_name"],
            "source": info.get("source"),
            "group": info.get("group"),
            "width": int(info["width"]),
            "height": int(info["height"]),
        }

    def load_image(self, idx: int) -> np.ndarray:
        info = self.image_info(idx)
        img = load_image(info["path"])
        if img.shape[:2] != (info["height"], info["width"]):
            raise VbgError(
                f"{info['path']} is {img.shape[1]}x{img.shape[0]}, the annotations say "
                f"{info['width']}x{info['height']} (run `python -m train check`)"
            )
        return img

    def targets(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(mask, ignore) uint8 {0,1} at full resolution, per the crowd mode."""
        person, crowd = person_mask(self.coco, self.ids[idx])
        if self.crowd == "person":
            return person | crowd, np.zeros_like(person)
        # Pixels an individual person covers stay person even inside a crowd region.
        return person, crowd & (1 - person)

    def original_mask(self, idx: int) -> np.ndarray:
        """Full-resolution ground truth, uint8 HxW {0,1}, for evaluation on the frame."""
        return self.targets(idx)[0]

    def raw(self, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image BGR uint8, mask, ignore) at full resolution, untransformed."""
        mask, ignore = self.targets(idx)
        return self.load_image(idx), mask, ignore

    def instances(self, idx: int) -> list[np.ndarray]:
        """The image's individual (non-crowd) person masks, uint8 HxW {0,1}: what
        copy-paste augmentation cuts out."""
        out = []
        for ann in self.coco.imgToAnns.get(self.ids[idx], []):
            if ann.get("category_id") == PERSON and not ann.get("iscrowd"):
                info = self.coco.imgs[self.ids[idx]]
                m = annotation_mask(ann, int(info["height"]), int(info["width"]))
                if m is not None:
                    out.append(m)
        return out

    def __getitem__(self, idx: int) -> dict[str, Any]:
        import torch

        image, mask, ignore = self.raw(idx)
        if self.transform is not None:
            out = dict(self.transform(image=image, mask=mask, ignore=ignore))
        else:
            out = {
                "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
                / 255.0,
                "mask": torch.from_numpy(mask[None].astype(np.float32)),
                "ignore": torch.from_numpy(ignore[None].astype(np.float32)),
            }
        out["id"] = self.ids[idx]
        return out
