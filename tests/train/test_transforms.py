"""Training augmentation and the validation transform (= the runtime's preprocessing)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("albumentations")
# pycocotools under numpy 2 warns on every decode; nothing this project can act on.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
)

from train.transforms import (  # noqa: E402
    CopyPaste,
    EvalTransform,
    TrainTransform,
    get_transform,
    pad_collate,
    resize_mask,
)
from vbg.card import InputSpec  # noqa: E402
from vbg.segmenter import model_input_size, preprocess  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])

# No randomness except what a test turns on.
STILL = dict(hflip=0.0, color_jitter=0.0, rotate=0.0, copy_paste=0.0, scale_range=(1.0, 1.0))


def _cfg(**kw):
    return {"height": 64, "width": 96, "crop": (64, 96), **STILL, **kw}


def _square(h=64, w=96, box=(20, 40, 10, 30)):
    """Black BGR image with a white rectangle rows y0:y1, cols x0:x1, and its mask."""
    y0, y1, x0, x1 = box
    img = np.zeros((h, w, 3), np.uint8)
    img[y0:y1, x0:x1] = 255
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return img, m


def _gray(t) -> np.ndarray:
    """Denormalised (ImageNet mean/std, RGB) output image as 0..255 gray."""
    img = t.numpy().transpose(1, 2, 0) * STD + MEAN
    return img.mean(axis=2) * 255


@pytest.mark.parametrize("shape", [(480, 640), (800, 600), (40, 50), (1000, 200)])
def test_train_output_size_dtype_and_binary_masks(shape):
    rng = np.random.default_rng(0)
    h, w = shape
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 1
    ignore = np.zeros((h, w), np.uint8)
    ignore[:5] = 1
    t = get_transform(
        True, {"height": 160, "width": 288, "crop": (160, 256), "scale_range": (0.6, 1.6)}, seed=0
    )
    for _ in range(4):
        out = t(image=img, mask=mask, ignore=ignore)
        assert out["image"].shape == (3, 160, 256) and out["image"].dtype == torch.float32
        for k in ("mask", "ignore"):
            assert out[k].shape == (1, 160, 256) and out[k].dtype == torch.float32
            assert set(np.unique(out[k].numpy())) <= {0.0, 1.0}
        assert torch.isfinite(out["image"]).all()


def test_flip_moves_mask_and_image_together():
    img, m = _square()
    out = TrainTransform(_cfg(hflip=1.0), seed=0)(image=img, mask=m, ignore=np.zeros_like(m))
    got = out["mask"][0].numpy()
    want = np.zeros_like(m)
    want[20:40, 96 - 30 : 96 - 10] = 1
    np.testing.assert_array_equal(got, want)
    # The image's white square is where the mask is.
    np.testing.assert_array_equal(_gray(out["image"]) > 127.5, want > 0)
    assert not out["ignore"].any()


def test_without_augmentation_the_sample_is_only_normalised():
    img, m = _square()
    out = TrainTransform(_cfg(), seed=0)(image=img, mask=m, ignore=np.zeros_like(m))
    np.testing.assert_array_equal(out["mask"][0].numpy(), m)
    np.testing.assert_allclose(
        out["image"].numpy(), preprocess(img, InputSpec(64, 96))[0], atol=1e-5
    )


@pytest.mark.parametrize("zoom", [0.5, 1.7])
def test_zoom_keeps_mask_aligned_with_image(zoom):
    img, m = _square(box=(16, 48, 24, 72))
    cfg = _cfg(scale_range=(zoom, zoom), crop=(32, 32) if zoom < 1 else (128, 192))
    t = TrainTransform(cfg, seed=1)
    for _ in range(3):
        out = t(image=img, mask=m, ignore=np.zeros_like(m))
        mask = out["mask"][0].numpy() > 0
        valid = out["ignore"][0].numpy() == 0
        bright = _gray(out["image"]) > 127.5
        # Same resize for both, then thresholded at the same half-way point.
        assert np.count_nonzero((mask != bright) & valid) <= 2
        if zoom > 1:
            assert (~valid).any()  # the zoomed-in image is still smaller than this crop


def test_padding_and_rotated_corners_are_ignored():
    img = np.full((40, 60, 3), 200, np.uint8)  # smaller than the crop at this zoom
    m = np.ones((40, 60), np.uint8)
    t = TrainTransform(_cfg(crop=(96, 128), rotate=20.0), seed=3)
    for _ in range(4):
        out = t(image=img, mask=m, ignore=np.zeros_like(m))
        ign = out["ignore"][0].numpy() > 0
        mask = out["mask"][0].numpy() > 0
        assert ign.any() and mask.any()
        assert not (ign & mask).any()  # padding is neither person nor trained on
        # Padding is the mean colour: zero after normalisation (away from the blended edge).
        inner = cv2.erode(ign.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert inner.any() and np.abs(out["image"].numpy()[:, inner]).max() < 0.05


def test_colour_order_follows_the_card():
    img = np.zeros((64, 96, 3), np.uint8)
    img[..., 2] = 255  # pure red in BGR
    rgb = TrainTransform(_cfg(color_order="RGB"), seed=0)(
        image=img, mask=np.zeros((64, 96), np.uint8)
    )
    bgr = TrainTransform(_cfg(color_order="BGR", mean=MEAN[::-1], std=STD[::-1]), seed=0)(
        image=img, mask=np.zeros((64, 96), np.uint8)
    )
    assert float(rgb["image"][0].mean()) > 2 and float(rgb["image"][2].mean()) < 0
    assert float(bgr["image"][2].mean()) > 2 and float(bgr["image"][0].mean()) < 0
    np.testing.assert_allclose(rgb["image"].numpy()[::-1], bgr["image"].numpy(), atol=1e-5)


def test_seeded_runs_repeat_and_torch_rng_drives_the_default():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    m = (rng.random((120, 160)) > 0.5).astype(np.uint8)
    cfg = {"height": 64, "width": 96, "crop": (64, 64)}

    def run(t, n=3):
        return [t(image=img, mask=m)["image"] for _ in range(n)]

    a, b = run(TrainTransform(cfg, seed=7)), run(TrainTransform(cfg, seed=7))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1])  # samples differ from each other
    t = TrainTransform(cfg)
    t.set_random_seed(7)
    assert all(torch.equal(x, y) for x, y in zip(a, run(t), strict=True))

    torch.manual_seed(3)
    c = run(TrainTransform(cfg))
    torch.manual_seed(3)
    d = run(TrainTransform(cfg))
    assert all(torch.equal(x, y) for x, y in zip(c, d, strict=True))


def test_train_transform_accepts_the_training_config():
    from train.config import TrainConfig

    cfg = TrainConfig(height=64, width=96, crop=(64, 64), copy_paste=0.0)
    out = get_transform(True, cfg, seed=0)(
        image=np.zeros((90, 120, 3), np.uint8), mask=np.zeros((90, 120), np.uint8)
    )
    assert out["image"].shape == (3, 64, 64)
    assert isinstance(get_transform(False, cfg), EvalTransform)


@pytest.mark.parametrize("shape", [(720, 1280), (800, 600), (825, 550), (480, 854), (37, 41)])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_eval_transform_is_the_runtime_preprocessing(shape, order):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask[: shape[0] // 2] = 1
    spec = InputSpec(height=160, width=288, color_order=order)
    out = get_transform(False, spec)(image=img, mask=mask)
    x = preprocess(img, spec)
    assert out["image"].shape == x.shape[1:]
    np.testing.assert_array_equal(out["image"].numpy(), x[0])  # bit for bit
    h, w = model_input_size(*shape, spec)
    assert out["mask"].shape == out["ignore"].shape == (1, h, w)
    assert h % 32 == 0 and w % 32 == 0
    np.testing.assert_array_equal(out["mask"][0].numpy(), resize_mask(mask, h, w))
    # Without masks, the image alone.
    assert set(get_transform(False, spec)(image=img)) == {"image"}


def test_resize_mask_stays_binary_and_centred():
    m = np.zeros((100, 100), np.uint8)
    m[40:60, 40:60] = 1
    for size in (10, 50, 137, 300):
        r = resize_mask(m, size, size)
        assert r.dtype == np.uint8 and set(np.unique(r)) <= {0, 1}
        ys, xs = np.nonzero(r)
        assert (
            abs((ys.mean() + 0.5) / size - 0.5) < 0.03
            and abs((xs.mean() + 0.5) / size - 0.5) < 0.03
        )


class _OnePerson:
    """A copy-paste source: one 60x40 photo whose person is a green rectangle."""

    def __init__(self, touching_bottom: bool = False):
        self.img = np.zeros((60, 40, 3), np.uint8)
        self.m = np.zeros((60, 40), np.uint8)
        y1 = 60 if touching_bottom else 50
        self.m[10:y1, 10:30] = 1
        self.img[self.m > 0] = (0, 255, 0)

    def __len__(self):
        return 1

    def load_image(self, idx):
        return self.img

    def instances(self, idx):
        return [self.m]


@pytest.mark.parametrize("bottom", [False, True])
def test_copy_paste_adds_the_person_with_its_mask(bottom):
    cp = CopyPaste(_OnePerson(bottom), p=1.0, scale_range=(1.0, 1.0))
    img = np.zeros((120, 80, 3), np.uint8)
    mask = np.zeros((120, 80), np.uint8)
    ignore = np.ones((120, 80), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(5):
        out_img, out_m, out_i = cp(img, mask, ignore, rng)
        assert set(np.unique(out_m)) == {0, 1} and out_m.dtype == np.uint8
        ys, xs = np.nonzero(out_m)
        # Same height relative to the frame as in its photo (40/60 or 50/60 of 120 px).
        assert abs((ys.max() - ys.min() + 1) - (100 if bottom else 80)) <= 1
        assert abs((xs.max() - xs.min() + 1) - 40) <= 1
        if bottom:
            assert ys.max() == 119
        # The pasted pixels are the person's (inside the mask, away from the soft edge).
        inner = out_m.copy()
        inner[[ys.min(), ys.max()], :] = 0
        inner[:, [xs.min(), xs.max()]] = 0
        assert (out_img[inner > 0] == (0, 255, 0)).all()
        assert not out_img[out_m == 0][:, 1].any() or out_img[out_m == 0][:, 1].max() < 200
        assert not (out_i & out_m).any()  # the pasted person is trained on
    assert not mask.any() and not img.any()  # inputs untouched


def test_copy_paste_off_and_unbound_do_nothing():
    img = np.zeros((50, 50, 3), np.uint8)
    m = np.zeros((50, 50), np.uint8)
    rng = np.random.default_rng(0)
    out = CopyPaste(None, p=1.0)(img, m, m, rng)
    assert out[0] is img
    out = CopyPaste(_OnePerson(), p=0.0)(img, m, m, rng)
    assert out[0] is img
    with pytest.raises(Exception, match="probability"):
        CopyPaste(None, p=2.0)


def test_copy_paste_through_the_dataset(tmp_path):
    pytest.importorskip("pycocotools")
    from tests.cocogen import make_coco
    from train.data import CocoPersonDataset

    ann, root = make_coco(tmp_path, n_images=10)
    t = get_transform(
        True, {"height": 64, "width": 96, "crop": (64, 96), **STILL, "copy_paste": 1.0}, seed=0
    )
    ds = CocoPersonDataset(ann, root, transform=t)  # binds the dataset as the source
    assert t.copy_paste is not None and t.copy_paste.source is ds
    empty = [i for i in range(len(ds)) if not ds.original_mask(i).any()]
    assert empty
    got = [ds[empty[0]]["mask"].sum().item() for _ in range(4)]
    assert any(v > 0 for v in got)  # people pasted onto an image that had none


def test_pad_collate_batches_different_sizes():
    spec = InputSpec(height=64, width=96)
    t = EvalTransform(spec)
    a = t(image=np.zeros((480, 640, 3), np.uint8), mask=np.ones((480, 640), np.uint8))
    b = t(image=np.zeros((800, 600, 3), np.uint8), mask=np.ones((800, 600), np.uint8))
    a["id"], b["id"] = 1, 2
    batch = pad_collate([a, b])
    ha, wa = a["image"].shape[1:]
    hb, wb = b["image"].shape[1:]
    H, W = max(ha, hb), max(wa, wb)
    assert batch["image"].shape == (2, 3, H, W) and batch["size"] == [(ha, wa), (hb, wb)]
    assert batch["id"].tolist() == [1, 2]
    assert torch.equal(batch["image"][0, :, :ha, :wa], a["image"])
    assert batch["ignore"][0, 0, :ha, :wa].sum() == 0 and batch["ignore"][0, 0, ha:, :].all()
    assert batch["mask"][1, 0, :hb, :wb].all() and not batch["mask"][1, 0, hb:, :].any()
