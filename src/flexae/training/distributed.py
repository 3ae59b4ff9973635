"""Multi-process training under torchrun: process group, data shards, per-rank seeds, gradient
averaging, and which process writes the run folder.

`torchrun --nproc_per_node K -m flexae train ...` starts K copies of the command (ranks 0..K-1).
Each rank trains on its own minibatches and the ranks average their gradients after every
backward pass, so all copies of every network and optimizer stay identical: data parallelism with
a K-times larger effective batch (docs/performance.md relates it to the paper's batch and learning
rates). Outside torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) everything here is a
no-op and training is exactly the single-process code path.

Why gradients are averaged by hand rather than by wrapping modules in DistributedDataParallel:
one Algorithm-1 iteration has six optimizers over overlapping parameter sets (E is updated by
L_AE, L_AE_Reg and L_Enc), critics that are frozen while gradients flow through them, several
forward passes of one module before one backward (E(x_j) and E(x_k); a critic on real/fake and
on the penalty's interpolates), which DDP's reducer does not fit. The gradient penalty is computed
as PyTorch's maintainers advise under DDP (pytorch issue 63812: its input gradient out of place
with `torch.autograd.grad(create_graph=True)`, per process, then one ordinary backward), and its
parameter gradients are averaged with the rest (docs/performance.md; tests/test_distributed_equal.py
shows 2 processes at batch B/2 make the update of 1 process at B). One all-reduce of the stepped optimizer's gradients between `backward()` and
`step()` (`average_gradients`, called by every update) is the arithmetic DDP performs (the mean
over ranks of each rank's gradient), needs no special case for any update, and costs one flat
all-reduce per update (14 per FlexAE-SR iteration: 1 + 5 + 5 + 1 + 1 + 1 updates; no overlap with the backward pass, which on CPUs
and within one machine is a small cost next to the double backward).

Sampling. Minibatches are drawn uniformly *with replacement*, as in the authors' code. Rank r
draws from its own shard of the training set, the examples r, r + K, r + 2K, ... (`shard`), so
the K batches of one update are disjoint, and each rank has its own random stream: rank 0 keeps
the run's seed (a 1-process run is unchanged), rank r > 0 is reseeded from (seed, r, step) after
the model is built (`seed_rank`), so its draws and noise are independent of the other ranks'.
The union of the shards is the training set and every example has the same chance to be drawn, as
in a single process. With replacement there are no epochs, hence no `set_epoch`.

Only rank 0 writes the run folder (config, log, grids, TensorBoard, checkpoints, metrics); the
other ranks run the identical loop in a throwaway folder (`rank_folder`). Checkpoints hold rank
0's state (all ranks' weights and optimizer states are equal; rank 0's BatchNorm running
statistics and RNG state), so a run resumes with any number of processes; resumed ranks > 0
start fresh streams (seeded with the step), so only a 1-process resume of a 1-process run repeats
the uninterrupted run bit for bit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def init_from_environment(device: str = "auto") -> None:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT, LOCAL_RANK); no-op without one or when already joined.

    Backend: NCCL when training on CUDA (each rank on GPU LOCAL_RANK), gloo on the CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        # "cuda" then means this rank's GPU everywhere (model, data, generators).
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def on_main(fn, *args, **kwargs) -> None:
    """Run `fn` on rank 0 only (e.g. preparing the run folder), then wait until it has finished."""
    if is_main():
        fn(*args, **kwargs)
    barrier()


def rank_folder(out: Path) -> Path:
    """The run folder on rank 0; on other ranks a private temporary folder, removed at exit, that
    takes the files the training loop writes, so only rank 0 writes into `out`."""
    if is_main():
        return Path(out)
    scratch = Path(tempfile.mkdtemp(prefix=f"flexae-rank{rank()}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def shard(data: Tensor) -> Tensor:
    """This rank's examples of a training set (N, ...): rows rank, rank + K, ... (all rows if K = 1)."""
    return data[rank()::world_size()] if is_distributed() else data


def seed_rank(seed: int, step: int) -> None:
    """Give rank r > 0 its own random stream, derived from (seed, r, step); rank 0 keeps its state."""
    if rank() > 0:
        torch.manual_seed(int(np.random.SeedSequence([seed, rank(), step]).generate_state(1)[0]))


@torch.no_grad()
def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Replace the gradients of `optimizer`'s parameters by their mean over all ranks.

    No-op in a single process. Every rank runs the same code on same-shaped batches, so the same
    parameters have gradients everywhere; they are packed into one flat buffer (one all-reduce
    instead of one per tensor) and unpacked in place.
    """
    if not is_distributed():
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])                  # (total numel,)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world_size())
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
