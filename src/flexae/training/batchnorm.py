"""`train.batchnorm_stats`: which forward passes move the BatchNorm running statistics of E and D.

"own" (the default): PyTorch's rule. A BatchNorm layer refreshes its running mean and variance
whenever it runs forward in train mode, so in FlexAE-SR the decoder's statistics move 7 times per
iteration (the reconstruction of line 3, five interpolations of line 6, one of line 8) and never on
decoded prior samples D(G(n)).

"authors": the authors' TF graph (`FlexAESR.py`, `_trainer`: every optimizer's `minimize` is built
under `tf.control_dependencies(UPDATE_OPS)`). Each of an iteration's 14 `sess.run`s (one L_AE, five
times L_Critic and L_Reg, then L_AE_Reg, L_Gen, L_Enc) is fed one
feed, real batches x and x_1 and noise n (`ae_feed_dict`, `disc_feed_dict`, `gen_feed_dict` of
`train`), and runs the moving-average update of every BatchNorm layer for every stream of the graph
(`_build_model`): the codes E(x) and E(x_1), the reconstructions D(E(x)), the decoded prior samples
D(G(n)) and the interpolations D(a E(x) + (1 - a) E(x_1)), a ~ U[0, 1] per row. The statistics are
those of the same forward pass that update's loss is computed from, i.e. with the weights before
its step; its gradient comes only from its own loss. Per FlexAE-SR iteration each decoder layer
is refreshed 14 x 3 = 42 times (14 of them by D(G(n))), each encoder layer 14 x 2 = 28 times.

`GraphStreams.refresh` does this before each update: it runs, under `torch.no_grad()` in train
mode, the streams of the graph that the update does not compute itself, on the update's own
tensors (its batches, its prior samples) so the statistics are those of its forward pass; what
the update's feed lacks (a second batch, noise, the mixing weights a) is drawn from a private
generator, so the training RNG and batch stream, and with them every weight and loss, are the
same as with "own". The update's own passes then refresh their streams as always. FlexAE and the
fixed-prior WAE use the same graph without the smoothing part: streams E(x), D(E(x)), D(G(n)).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from flexae.config import BATCHNORM_STATS  # noqa: E402,F401  (re-exported)

# The streams of the authors' graph, by the name an update lists among the ones it computes itself.
CODE, CODE_1, RECONSTRUCTION, PRIOR, INTERPOLATION = "code", "code_1", "reconstruction", "prior", "interpolation"

_SALT = 0x5B_A7C4  # keeps these draws apart from the run's other seeded streams


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def statistics_kept(module: nn.Module) -> Iterator[None]:
    """A train-mode pass of `module` (batch statistics, as in the update) that leaves its running
    statistics and `num_batches_tracked` untouched: for a stream whose layers were refreshed already."""
    layers = [bn for bn in batchnorm_layers(module) if bn.track_running_stats]
    for bn in layers:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn in layers:
            bn.track_running_stats = True


class GraphStreams:
    """The BatchNorm refreshes of `train.batchnorm_stats = "authors"` (module docstring).

    `draw(generator)` returns a real batch (B, ...) drawn with `generator`; `ae_pass` is the
    trainer's (the passes run in the step's precision, as the update's own); `interpolations`:
    the graph has the smoothing critic's stream (FlexAE-SR)."""

    def __init__(self, model: nn.Module, draw: Callable[[torch.Generator], Tensor],
                 ae_pass: Callable[[Callable[[Tensor], Tensor], Tensor], Tensor], seed: int, interpolations: bool):
        self.model, self.draw, self.ae_pass, self.seed = model, draw, ae_pass, int(seed)
        self.interpolations = interpolations
        layers = batchnorm_layers(model.encoder) + batchnorm_layers(model.decoder)
        # Refreshed by every update, so its counter (saved in checkpoints) numbers the updates:
        # the private draws of a resumed run are those of the uninterrupted run.
        self.counter = layers[0].num_batches_tracked if layers else None

    def _generator(self, device: torch.device) -> torch.Generator:
        count = int(self.counter)  # type: ignore[arg-type]
        return torch.Generator(device=device).manual_seed(((self.seed * 1_000_003 + count) ^ _SALT) % 2**63)

    @torch.no_grad()
    def refresh(self, x: Tensor | None = None, x_1: Tensor | None = None, z_hat: Tensor | None = None,
                own: tuple[str, ...] = ()) -> None:
        """Before an update with real batches `x`, `x_1` (B, ...) and prior samples `z_hat` (B, m)
        (None: not in the update's feed, drawn privately): run the graph's streams not in `own`."""
        if self.counter is None:  # no BatchNorm in E or D: nothing to refresh
            return
        m = self.model
        device = next(m.parameters()).device
        gen = self._generator(device)
        x = self.draw(gen) if x is None else x
        n = x.shape[0]
        z = self._encode(x, refresh=CODE not in own)                                # (B, m)
        if RECONSTRUCTION not in own:
            self.ae_pass(m.decode, z)
        if PRIOR not in own:
            self.ae_pass(m.decode, m.sample_latent(n, gen) if z_hat is None else z_hat)
        if self.interpolations and not {CODE_1, INTERPOLATION} <= set(own):
            z_1 = self._encode(self.draw(gen) if x_1 is None else x_1, refresh=CODE_1 not in own)
            if INTERPOLATION not in own:
                a = torch.rand(n, 1, device=device, generator=gen)                  # (B, 1)
                self.ae_pass(m.decode, a * z + (1 - a) * z_1)

    def _encode(self, x: Tensor, refresh: bool) -> Tensor:
        if refresh:
            return self.ae_pass(self.model.encode, x)
        with statistics_kept(self.model.encoder):
            return self.ae_pass(self.model.encode, x)
