"""Using a trained model: samples (paper Fig 6-9), reconstructions (Fig 4a), interpolations between
test images (Fig 10) and attribute traversals on CelebA (Fig 11-15).

The image functions take a model in eval mode (`flexae.app.load_run(run_dir, device)`) and
uint8 images (N, C, H, W), work in batches of `batch_size` on the model's device, and return float
images (N, C, H, W) in [0, 1] on the CPU; `flexae.grids.write_images` saves them as a PNG grid or
an .npz. The `*_for_run` helpers also pick the test images and load the data a run was trained on.

Reproducibility: sample i of `sample(model, n, seed=s)` comes from its own generator seeded with
s + i, so it is the same whatever n and batch_size are (and `seed=0, n=100` and `seed=100, n=100`
are disjoint sets). Test images are chosen by a CPU generator seeded with `seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flexae.config import RunConfig
from flexae.data import IMAGES, data_source, load_for_config
from flexae.data.images import ImageData, load_images, resolve_data_dir
from flexae.data import as_float
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.priors import FlowMatchingPrior, LearnedPrior

# Priors that map noise to codes deterministically: a sample is drawn as its noise, then mapped.
NOISE_DRIVEN = (LearnedPrior, FlowMatchingPrior)

BATCH_SIZE = 256  # images per forward pass
MAX_SEED = 2**63 - 1  # torch generators take seeds in [0, 2**63 - 1]


def _device(model: AutoEncoder) -> torch.device:
    return next(model.parameters()).device


def _chunks(n: int, size: int) -> list[slice]:
    if size < 1:
        raise UserError(f"batch size must be positive, got {size}")
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


# --- sampling -----------------------------------------------------------------------------------

def prior_draws(prior: torch.nn.Module, seeds: range | list[int], device: torch.device) -> Tensor:
    """Row i drawn with its own generator seeded with seeds[i]: the input noise n (N, m') of a
    learned prior, the latent z (N, m) of a fixed one. Row i does not depend on the other seeds."""
    draw = prior.noise if isinstance(prior, NOISE_DRIVEN) else prior.sample
    rows = [draw(1, torch.Generator(device=device).manual_seed(int(s))) for s in seeds]
    return torch.cat(rows)


@torch.no_grad()
def sample(model: AutoEncoder, n: int, seed: int = 0, batch_size: int = BATCH_SIZE) -> Tensor:
    """n generated images D(z), z from the model's prior (D(G(n)) for FlexAE): (n, C, H, W) in [0, 1]."""
    if n < 1:
        raise UserError(f"number of samples must be positive, got {n}")
    if not 0 <= seed <= MAX_SEED - (n - 1):  # sample i is drawn with seed + i
        raise UserError(f"seed must lie in [0, {MAX_SEED - (n - 1)}] for {n} samples (each uses seed + i), got {seed}")
    device, out = _device(model), []
    for part in _chunks(n, batch_size):
        draws = prior_draws(model.prior, range(seed + part.start, seed + part.stop), device)
        z = model.prior(draws) if isinstance(model.prior, NOISE_DRIVEN) else draws   # (B, m)
        out.append(model.decode(z).float().cpu())                                     # (B, C, H, W)
    return torch.cat(out)


# --- encoding, decoding, reconstruction ---------------------------------------------------------

@torch.no_grad()
def encode(model: AutoEncoder, images: Tensor, batch_size: int = BATCH_SIZE) -> Tensor:
    """uint8 images (N, C, H, W) -> codes (N, m) float32 on the model's device (a VAE's mean)."""
    device = _device(model)
    return torch.cat([model.encode(as_float(images[part].to(device))).float()
                      for part in _chunks(len(images), batch_size)])


@torch.no_grad()
def decode(model: AutoEncoder, codes: Tensor, batch_size: int = BATCH_SIZE) -> Tensor:
    """Codes (N, m) -> images (N, C, H, W) in [0, 1] on the CPU."""
    device = _device(model)
    return torch.cat([model.decode(codes[part].to(device)).float().cpu()
                      for part in _chunks(len(codes), batch_size)])


def reconstruct(model: AutoEncoder, images: Tensor, batch_size: int = BATCH_SIZE) -> Tensor:
    """uint8 images (N, C, H, W) -> D(E(x)) (N, C, H, W) in [0, 1] on the CPU."""
    return decode(model, encode(model, images, batch_size), batch_size)


def paired_rows(real: Tensor, recon: Tensor, columns: int) -> Tensor:
    """Fig 4a layout: a row of `columns` real images, then the row of their reconstructions, ...
    real, recon: (N, C, H, W) floats -> (2N, C, H, W) in reading order."""
    rows = []
    for part in _chunks(len(real), columns):
        rows += [real[part], recon[part]]
    return torch.cat(rows)


# --- interpolation (Fig 10) ---------------------------------------------------------------------

def interpolation_weights(columns: int) -> Tensor:
    """t_0..t_{K-1} = 0, 1/(K-1), ..., 1 for an odd K >= 3, so the middle weight is exactly 1/2."""
    if columns < 3 or columns % 2 == 0:
        raise UserError(f"interpolation needs an odd number of columns >= 3 (the middle one is the "
                        f"mean code), got {columns}")
    return torch.arange(columns, dtype=torch.float32) / (columns - 1)


def interpolate(model: AutoEncoder, first: Tensor, last: Tensor, columns: int = 11,
                batch_size: int = BATCH_SIZE) -> Tensor:
    """Rows of decoded codes (1 - t) z_a + t z_b between pairs of uint8 images (R, C, H, W).

    Column 0 is D(z_a) and column K-1 is D(z_b) (the reconstructions), the middle column decodes
    the mean code (z_a + z_b) / 2. Returns (R * K, C, H, W) in [0, 1], row by row.
    """
    t = interpolation_weights(columns).to(_device(model))[None, :, None]   # (1, K, 1)
    z_a = encode(model, first, batch_size)[:, None, :]                     # (R, 1, m)
    z_b = encode(model, last, batch_size)[:, None, :]
    z = (1 - t) * z_a + t * z_b                                            # (R, K, m)
    return decode(model, z.reshape(-1, z.shape[-1]), batch_size)


# --- attribute traversal (Fig 11-15) ------------------------------------------------------------

def attribute_direction(model: AutoEncoder, images: Tensor, present: Tensor,
                        batch_size: int = BATCH_SIZE) -> Tensor:
    """z_pos - z_neg: mean code of the images with the attribute minus that of those without.

    images uint8 (N, C, H, W), present bool (N,). Returns (m,) on the model's device.
    """
    present = present.bool()
    if present.all() or not present.any():
        raise UserError(f"the attribute is {'present in all' if present.all() else 'absent from all'} "
                        f"{len(present)} training images: no direction can be formed")
    total = {True: 0.0, False: 0.0}
    for part in _chunks(len(images), batch_size):  # streaming sums: CelebA train is 162,770 codes
        codes, mask = encode(model, images[part], batch_size), present[part].to(_device(model))
        total[True] = total[True] + codes[mask].sum(0)
        total[False] = total[False] + codes[~mask].sum(0)
    n_pos = int(present.sum())
    return total[True] / n_pos - total[False] / (len(present) - n_pos)


def traversal_strengths(side: int, strength: float) -> Tensor:
    """side^2 weights from -strength to +strength in reading order; the middle one is exactly 0."""
    if side < 1 or side % 2 == 0:
        raise UserError(f"traversal grids need an odd side (the centre is the real image), got {side}")
    half = (side * side - 1) / 2
    return strength * (torch.arange(side * side, dtype=torch.float32) - half) / max(half, 1)


def traverse(model: AutoEncoder, images: Tensor, direction: Tensor, side: int = 7,
             strength: float = 1.5, batch_size: int = BATCH_SIZE) -> Tensor:
    """One side x side grid per uint8 image (E, C, H, W): D(z + a_i d), a_i from -strength to
    +strength in reading order, so the centre is the image's reconstruction.
    Returns (E * side^2, C, H, W) in [0, 1]."""
    a = traversal_strengths(side, strength).to(_device(model))[None, :, None]   # (1, S^2, 1)
    z = encode(model, images, batch_size)[:, None, :] + a * direction            # (E, S^2, m)
    return decode(model, z.reshape(-1, z.shape[-1]), batch_size)


# --- data of a run, choice of test images -------------------------------------------------------

def load_split(cfg: RunConfig, split: str, data_dir: str | Path | None,
               image_shape: tuple[int, ...]) -> ImageData:
    """One split of the image data set the run was trained on, checked against the model's shape.

    The data directory is `data_dir`, else the one recorded at training, else $FLEXAE_DATA_DIR,
    else ./data.
    """
    source = data_source(cfg.train.dataset, cfg.train.image_size)
    if source.own:  # images of the user's own: their train / test split
        if split not in source.splits:
            raise UserError(f"{cfg.train.dataset} has the splits {' and '.join(source.splits)}, not {split!r}")
        images = getattr(load_for_config(cfg.train, data_dir), split)
        data = ImageData(images=images, labels=None, name=cfg.train.dataset, split=split)
    elif not source.is_image:
        raise UserError(f"this run was trained on {cfg.train.dataset!r}, not on an image data set "
                        f"({', '.join(IMAGES)}, folder:PATH, npz:PATH, npy:PATH)")
    else:
        data = load_images(cfg.train.dataset, split, data_dir or cfg.train.data_dir)
    if tuple(data.image_shape) != tuple(image_shape):
        raise UserError(f"{cfg.train.dataset} {split} images are {'x'.join(map(str, data.image_shape))} "
                        f"but the model was trained on {'x'.join(map(str, image_shape))}")
    return data


def model_image_shape(model: AutoEncoder) -> tuple[int, int, int]:
    shape = getattr(model.decoder, "image_shape", None)
    if shape is None and len(getattr(model, "data_shape", ())) == 3:  # a decoder of the user's own
        shape = model.data_shape
    if shape is None:
        raise UserError("this model does not produce images (it was trained on synthetic data)")
    return tuple(shape)  # type: ignore[return-value]


def choose(candidates: Tensor, n: int, seed: int, what: str) -> Tensor:
    """n distinct entries of the index tensor `candidates`, in a random order fixed by `seed`."""
    if n > len(candidates):
        raise UserError(f"asked for {n} {what} but only {len(candidates)} are available")
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    return candidates[order[:n]]


@dataclass
class Traversal:
    images: Tensor           # (E * side^2, C, H, W) in [0, 1]; grid e holds rows e*side^2 ...
    strengths: Tensor        # (side^2,) multiples of the direction, in reading order
    examples: Tensor         # (E,) test-split indices of the centre images
    has_attribute: Tensor    # (E,) bool: negatives first, then positives (paper: (a), (b) | (c), (d))
    direction: Tensor        # (m,) z_pos - z_neg


def attribute_traversal_for_run(model: AutoEncoder, cfg: RunConfig, attribute: str, *,
                                data_dir: str | Path | None = None, examples: int = 4, side: int = 7,
                                strength: float = 1.5, seed: int = 0, train_images: int | None = None,
                                batch_size: int = BATCH_SIZE) -> Traversal:
    """Fig 11-15 for one attribute: the direction z_pos - z_neg over the training split (or a random
    `train_images` of it), applied to `examples` test images, half without the attribute, half with."""
    shape = model_image_shape(model)
    traversal_strengths(side, strength)  # check the side before loading any data
    if cfg.train.dataset != "celeba":
        raise UserError(f"traverse needs CelebA attributes; this run was trained on {cfg.train.dataset}")
    test = load_split(cfg, "test", data_dir, shape)
    names = test.attribute_names
    if names is None or test.attributes is None:
        where = resolve_data_dir(data_dir or cfg.train.data_dir)
        raise UserError(f"no CelebA attributes: list_attr_celeba.txt is missing next to "
                        f"img_align_celeba/ (data directory {where})")
    if attribute not in names:
        raise UserError(f"unknown attribute {attribute!r}; choose from {', '.join(names)}")
    k = names.index(attribute)
    train = load_split(cfg, "train", data_dir, shape)
    if train_images is not None and train_images < len(train):
        from flexae.data.images import subset
        train = subset(train, train_images, seed)
    direction = attribute_direction(model, train.images, train.attributes[:, k], batch_size)
    has = test.attributes[:, k]
    n_neg = examples // 2
    picked = torch.cat([choose(torch.nonzero(~has).flatten(), n_neg, seed, f"test images without {attribute}"),
                        choose(torch.nonzero(has).flatten(), examples - n_neg, seed, f"test images with {attribute}")])
    images = traverse(model, test.images[picked], direction, side, strength, batch_size)
    return Traversal(images, traversal_strengths(side, strength), picked, has[picked], direction.cpu())


def reconstructions_for_run(model: AutoEncoder, cfg: RunConfig, *, split: str = "test", n: int = 10,
                            seed: int = 0, data_dir: str | Path | None = None,
                            batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor, Tensor]:
    """n random images of `split` -> (real, reconstructions, indices); images (n, C, H, W) in [0, 1]."""
    data = load_split(cfg, split, data_dir, model_image_shape(model))
    index = choose(torch.arange(len(data)), n, seed, f"{split} images")
    real = data.images[index]
    return as_float(real), reconstruct(model, real, batch_size), index


def interpolations_for_run(model: AutoEncoder, cfg: RunConfig, *, rows: int = 10, columns: int = 11,
                           seed: int = 0, split: str = "test", data_dir: str | Path | None = None,
                           batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """Fig 10: `rows` random pairs of distinct `split` images -> (images (rows*columns, C, H, W),
    index pairs (rows, 2))."""
    interpolation_weights(columns)  # check before loading data
    data = load_split(cfg, split, data_dir, model_image_shape(model))
    index = choose(torch.arange(len(data)), 2 * rows, seed, f"{split} images").reshape(rows, 2)
    images = interpolate(model, data.images[index[:, 0]], data.images[index[:, 1]], columns, batch_size)
    return images, index


def seeds_array(seed: int, n: int) -> np.ndarray:
    return np.arange(seed, seed + n, dtype=np.int64)


__all__ = ["BATCH_SIZE", "prior_draws", "sample", "encode", "decode", "reconstruct", "paired_rows",
           "interpolation_weights", "interpolate", "attribute_direction", "traversal_strengths",
           "traverse", "load_split", "model_image_shape", "choose", "Traversal",
           "attribute_traversal_for_run", "reconstructions_for_run", "interpolations_for_run",
           "seeds_array"]
