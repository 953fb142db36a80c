"""A prior model's training side: previous-frame masks synthesised from the ground truth,
a stateless network widened to take them, and the hook that feeds stills "no prior"."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tests.train.fitutil import TINY_DECODER  # noqa: E402
from train.config import make_config  # noqa: E402
from train.model import build_model, create_unet  # noqa: E402
from train.prior import UNKNOWN, PriorSynthesis, with_prior  # noqa: E402

torch.set_num_threads(1)


def _masks(b: int = 32, h: int = 64, w: int = 64) -> torch.Tensor:
    """A person-like blob per sample, at a different place each."""
    m = torch.zeros(b, 1, h, w)
    for i in range(b):
        x0 = 8 + (i * 5) % 24
        m[i, 0, 16:60, x0 : x0 + 20] = 1.0
    return m


def test_synthesised_prior_is_a_perturbed_copy_of_the_mask():
    masks = _masks()
    gen = torch.Generator().manual_seed(0)
    prior = PriorSynthesis()(masks, gen)
    assert prior.shape == masks.shape
    assert prior.min() >= -1.0 and prior.max() <= 1.0
    unknown = (prior == UNKNOWN).flatten(1).all(1)
    assert 0 < int(unknown.sum()) < 16  # about 15 % of samples have no prior
    known = ~unknown
    p = (prior[known] + 1) / 2
    # Close to its own mask (IoU of p > 0.5 well above chance), yet never the mask itself.
    inter = ((p > 0.5) & (masks[known] > 0.5)).flatten(1).sum(1).float()
    union = ((p > 0.5) | (masks[known] > 0.5)).flatten(1).sum(1).float()
    iou = inter / union
    assert float(iou.median()) > 0.6
    assert not torch.equal(p, masks[known])
    # The same generator seed gives the same priors: validation compares epochs fairly.
    again = PriorSynthesis()(masks, torch.Generator().manual_seed(0))
    assert torch.equal(prior, again)


def test_no_perturbation_gives_the_mask_encoded():
    """With every perturbation off, the prior is exactly 2 * mask - 1."""
    synth = PriorSynthesis(unknown=0.0, other=0.0).scaled(0.0)
    half = PriorSynthesis().scaled(0.5)
    assert (half.shift, half.morph_px, half.blobs) == (0.02, 2, 0.175)
    assert half.unknown == PriorSynthesis().unknown
    masks = _masks(4)
    x = torch.randn(4, 3, 64, 64)
    out = with_prior(x, masks, synth)
    assert out.shape == (4, 4, 64, 64)
    assert torch.equal(out[:, :3], x)
    assert torch.allclose(out[:, 3:], masks * 2 - 1, atol=1e-5)


def test_widened_model_starts_as_the_stateless_one(tmp_path):
    """Fine-tuning a prior model from a stateless one: until it learns, the prior channel
    changes nothing, and a 3-channel input (a still) is padded with "no prior"."""
    torch.manual_seed(1)
    saved = create_unet("Unet", "mobilenet_v2", TINY_DECODER).eval()
    path = tmp_path / "stateless.pt"
    torch.save(saved.state_dict(), path)
    cfg = make_config(
        None,
        {
            "encoder": "mobilenet_v2",
            "encoder_weights": "none",
            "decoder_channels": TINY_DECODER,
            "init_weights": str(path),
            "prior": True,
        },
    )
    model = build_model(cfg).eval()
    assert model.encoder.features[0][0].weight.shape[1] == 4
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        want = saved(x)
        still = model(x)  # the hook adds the fourth channel
        with_noise = model(torch.cat([x, torch.rand(2, 1, 64, 96) * 2 - 1], 1))
    assert torch.allclose(still, want, atol=1e-5)
    assert torch.allclose(with_noise, want, atol=1e-5)
    # Once the prior's kernels are not zero it does change the output.
    with torch.no_grad():
        model.encoder.features[0][0].weight[:, 3].fill_(0.5)
    with torch.inference_mode():
        assert not torch.allclose(
            model(torch.cat([x, torch.ones(2, 1, 64, 96)], 1)), want, atol=1e-3
        )
    assert cfg.input_spec().prior and cfg.input_spec().channels == 4
