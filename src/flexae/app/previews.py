"""What an image run shows while it trains: preview grids (PNG) and, optionally, TensorBoard.

Preview grids are rendered in eval mode (BatchNorm running statistics, as a user samples later),
in fp32 outside autocast, from fixed inputs, and every `train.grid_every` iterations:
- `grids/samples-<step>.png`: 8x8 generated images from 64 fixed prior draws. Draw i uses its own
  generator seeded with `seed + PREVIEW_SEED_OFFSET + i` (`flexae.inference.sample`), so the noise is
  the same at every step and after every resume, needs no state in the checkpoint and never touches
  the training RNG (a resumed run stays bit-identical to an uninterrupted one).
- `grids/reconstructions-<step>.png`: the first 32 test images and their reconstructions, as four
  pairs of rows (a row of 8 real images, then the row of their reconstructions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from flexae import inference
from flexae.data import as_float
from flexae.errors import UserError
from flexae.grids import make_grid, to_uint8, write_images
from flexae.models import AutoEncoder
from flexae.runs.layout import GRIDS_DIR
from flexae.runs.run_folder import RunFolder

PREVIEW_SEED_OFFSET = 1_000_000  # keeps the preview seeds apart from the run's own seed
GRID_SIDE = 8                    # 8x8 grids


class Previews:
    """Fixed-input sample and reconstruction grids of one image run."""

    def __init__(self, out: Path, test_images: Tensor, seed: int):
        self.folder = RunFolder(out).file(GRIDS_DIR)  # grids are written atomically (flexae.grids)
        self.test = test_images[: GRID_SIDE * GRID_SIDE // 2].cpu()  # (32, C, H, W) uint8
        self.seed = seed + PREVIEW_SEED_OFFSET

    def render(self, model: AutoEncoder) -> dict[str, Tensor]:
        """{"samples": (64, C, H, W), "reconstructions": (64, C, H, W)} in [0, 1], eval mode."""
        was_training = model.training
        model.eval()
        try:
            # Models with an ex-post sampler have no samples until it is fitted (after training).
            samples = inference.sample(model, GRID_SIDE * GRID_SIDE, self.seed) if model.can_generate() else None
            recon = inference.reconstruct(model, self.test)
        finally:
            model.train(was_training)
        grids = {"samples": samples} if samples is not None else {}
        return {**grids, "reconstructions": inference.paired_rows(as_float(self.test), recon, GRID_SIDE)}

    def write(self, model: AutoEncoder, step: int, tensorboard: "TensorBoard | None" = None) -> dict[str, Path]:
        """Render and save both grids for `step`; a grid of the same step is replaced (a resumed
        run redoes the steps after its checkpoint, with the same result)."""
        grids = self.render(model)
        paths = {name: write_images(self.folder / f"{name}-{step:07d}.png", images, GRID_SIDE, overwrite=True)
                 for name, images in grids.items()}
        if tensorboard is not None:
            tensorboard.images(grids, step)
        return paths


class TensorBoard:
    """Mirrors the JSONL log's numbers (and the preview grids) to TensorBoard event files."""

    def __init__(self, log_dir: Path, start_step: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is optional
        except ImportError:
            raise UserError("train.tensorboard needs the tensorboard package: "
                            "pip install 'flexae[tensorboard]'") from None
        # purge_step: after a resume, hide events a killed run wrote past its last checkpoint.
        self.writer = SummaryWriter(str(log_dir), purge_step=start_step or None)

    def scalars(self, record: dict[str, Any]) -> None:
        step = record.get("step")
        for key, value in record.items():
            if key not in ("step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # a killed run keeps its curves

    def images(self, grids: dict[str, Tensor], step: int) -> None:
        for name, images in grids.items():
            self.writer.add_image(name, make_grid(to_uint8(images), GRID_SIDE), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["Previews", "TensorBoard", "PREVIEW_SEED_OFFSET", "GRID_SIDE"]
