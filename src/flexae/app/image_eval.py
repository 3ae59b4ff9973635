"""Evaluation of an image run while it trains (`train.eval_images` > 0): FID and KID of a fixed set
of generated images against `eval_images` reference images, every `train.eval_every` iterations,
so a long adversarial run can be judged (and its best checkpoint kept) as it goes.

The reference images (`evaluation_split`, `train.best_split`): by default a validation set, a fixed
random slice of `eval_images` *training* images (chosen by `train.data_seed`) that the training
batches then never draw, so `best.pt` is not selected on the test images the tables report. Runs
without `eval_images` train on every training image, as before. `best_split = "test"` compares
with the first `eval_images` test images instead (the behaviour before 0.1.x), with a warning.

The generated images come from fixed prior draws (seeds of their own, never the training RNG, as
the preview grids), in eval mode; the test images' Inception features are computed once (and
cached on disk by the extractor). With fewer images than the 2048 feature dimensions FID is biased
upward: compare values of one run, or of runs with the same `eval_images`; KID is unbiased.
"""

from __future__ import annotations

import warnings

import torch

from flexae import inference
from flexae.data import as_float
from flexae.errors import UserError
from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import InceptionExtractor, load_extractor
from flexae.metrics.kid import kid_from_features
from flexae.models import AutoEncoder

from flexae.config import BEST_SPLITS  # noqa: E402,F401  train.best_split (re-exported)
VALIDATION_SEED_OFFSET = 3_000_000  # the validation slice's draw, apart from the data set's own uses of data_seed

EVAL_SEED_OFFSET = 2_000_000  # keeps these draws apart from the run's seed and the preview seeds
KID_SUBSETS = 10


def evaluation_split(train: torch.Tensor, test: torch.Tensor, n: int, best_split: str,
                     data_seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the images training batches draw from, the n reference images of the evaluation or None
    when n = 0) from uint8 (N, C, H, W) train and test images (see the module docstring)."""
    if n == 0:
        return train, None
    if best_split == "test":
        warnings.warn("train.best_split='test': best.pt is selected on the test images, which biases "
                      "every number reported on them; the default 'validation' holds out training images",
                      stacklevel=2)
        return train, test
    if n >= train.shape[0]:
        raise UserError(f"train.eval_images {n} leaves no training images of {train.shape[0]} (the validation "
                        f"set is held out from them)")
    order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(data_seed + VALIDATION_SEED_OFFSET))
    held, kept = order[:n].sort().values, order[n:].sort().values
    return train[kept.to(train.device)], train[held.to(train.device)]


class ImageEvaluator:
    """FID / KID of a model's samples against held-out reference images (see the module docstring)."""

    def __init__(self, reference_images: torch.Tensor, n: int, seed: int, device: torch.device):
        if n > reference_images.shape[0]:
            raise UserError(f"train.eval_images {n} exceeds the {reference_images.shape[0]} test images")
        self.test = reference_images[:n]      # uint8 (n, C, H, W), the fixed held-out set
        self.n, self.seed, self.device = n, seed + EVAL_SEED_OFFSET, device
        self._extractor: InceptionExtractor | None = None
        self._test_features: torch.Tensor | None = None

    def _features_of_test(self) -> torch.Tensor:
        if self._extractor is None:
            self._extractor = load_extractor(device=self.device, progress=False)
            self._test_features = self._extractor(as_float(self.test))
        return self._test_features  # type: ignore[return-value]

    def __call__(self, model: AutoEncoder) -> dict[str, float]:
        """{"fid", "kid", "kid_std"} of `model` now; the model is left in the mode it was in."""
        real = self._features_of_test()
        was_training = model.training
        model.eval()
        try:
            generated = self._extractor(inference.sample(model, self.n, self.seed), cache=False)  # type: ignore[misc]
        finally:
            model.train(was_training)
        with warnings.catch_warnings():  # n < 2048 is the point here (see the module docstring)
            warnings.simplefilter("ignore")
            fid = fid_from_features(generated, real)
        kid = kid_from_features(generated, real, KID_SUBSETS, min(self.n, 1000), self.seed)
        return {"fid": fid, "kid": kid.mean, "kid_std": kid.std}
