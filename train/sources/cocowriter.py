"""Builds a COCO person set image by image: masks in, compressed RLE annotations out.

Every converter and the composite generator write through this, so all of them produce the
same format: one category (person, id 1), `source`, `group` and `kind` on each image, and
the annotation file written atomically at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError

CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"}]


def encode_mask(mask: np.ndarray) -> tuple[dict[str, Any], list[float], int]:
    """(compressed RLE with str counts, bbox [x, y, w, h], area) of a uint8 {0,1} mask."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    return rle, bbox, int(mask_util.area(rle))


class CocoWriter:
    """Collects images and person masks; `write()` saves the annotation JSON."""

    def __init__(self, description: str, min_pixels: int = 16) -> None:
        self.description = description
        self.min_pixels = min_pixels
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.images)

    def add(
        self,
        file_name: str,
        size: tuple[int, int],
        masks: list[np.ndarray],
        *,
        source: str,
        group: str | None = None,
        kind: str | None = None,
        crowd: list[np.ndarray] | None = None,
        **extra: Any,
    ) -> int:
        """Adds one image (size = (height, width)) with one mask per person; returns its id.
        Masks smaller than `min_pixels` are dropped (a stray labelled pixel is no person)."""
        h, w = size
        img_id = len(self.images) + 1
        info: dict[str, Any] = {
            "id": img_id,
            "file_name": file_name,
            "width": int(w),
            "height": int(h),
            "source": source,
            "group": group or f"{source}/{img_id}",
        }
        if kind:
            info["kind"] = kind
        info.update(extra)
        self.images.append(info)
        for m, is_crowd in [(m, 0) for m in masks] + [(m, 1) for m in crowd or []]:
            if m.shape != (h, w):
                raise VbgError(f"{file_name}: mask is {m.shape[1]}x{m.shape[0]}, image {w}x{h}")
            if int(m.sum()) < self.min_pixels:
                continue
            rle, bbox, area = encode_mask(m)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": img_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": is_crowd,
                }
            )
        return img_id

    def dataset(self) -> dict[str, Any]:
        return {
            "info": {"description": self.description},
            "images": self.images,
            "annotations": self.annotations,
            "categories": CATEGORIES,
        }

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.dataset()))
        os.replace(tmp, path)
        return path
