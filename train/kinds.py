"""What kind of picture an image of a person set is: portrait, full body, multi-person, video.

The mixing sampler weights kinds, and `train check` counts them. An image may say its kind
itself (a `kind` field, as the composites and converters write it); otherwise it is
inferred from its annotations:

- video: its `group` holds more than one image (frames of one clip);
- multi: more than one person annotation (or a crowd region);
- portrait: the one person is cut off by the bottom edge (head and shoulders, half body);
- fullbody: the one person is seen whole;
- empty: no person at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

KINDS = ("portrait", "fullbody", "multi", "video", "empty")
PERSON = 1


def group_sizes(images: Iterable[dict[str, Any]]) -> Counter:
    return Counter(str(im["group"]) for im in images if im.get("group") not in (None, ""))


def image_kind(image: dict[str, Any], anns: list[dict[str, Any]], sizes: Counter) -> str:
    """One of KINDS for a COCO `images` entry, its annotations and the set's group sizes."""
    kind = image.get("kind")
    if kind in KINDS:
        return str(kind)
    group = image.get("group")
    if group not in (None, "") and sizes.get(str(group), 0) > 1:
        return "video"
    people = [a for a in anns if a.get("category_id") == PERSON]
    if not people:
        return "empty"
    if len(people) > 1 or any(a.get("iscrowd") for a in people):
        return "multi"
    bbox = people[0].get("bbox") or [0, 0, 0, 0]
    bottom = float(bbox[1]) + float(bbox[3])
    return "portrait" if bottom >= float(image["height"]) - 2 else "fullbody"


def kinds_of(dataset: dict[str, Any]) -> dict[int, str]:
    """{image id: kind} for a whole COCO dict."""
    by_img: dict[int, list[dict[str, Any]]] = {}
    for a in dataset.get("annotations", []):
        by_img.setdefault(int(a["image_id"]), []).append(a)
    sizes = group_sizes(dataset.get("images", []))
    return {
        int(im["id"]): image_kind(im, by_img.get(int(im["id"]), []), sizes)
        for im in dataset.get("images", [])
    }
