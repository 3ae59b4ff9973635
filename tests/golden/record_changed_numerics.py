"""Re-record the keys of `CHANGED` and `CHANGED_SAMPLES` in tests/test_refactor_numerics.py (numbers changed by design)
on this machine's CPU capability, through the current API and the test's own procedure:

    PYTHONPATH=src python tests/golden/record_changed_numerics.py

writes tests/golden/changed/numerics_FAMILY.pt (the kernel family, e.g. AVX512-GenuineIntel+amx). Only those keys are written; the
pre-refactor recordings (numerics*.pt) stay as they were."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_refactor_numerics import CHANGED, CHANGED_SAMPLES, GOLDEN, kernel_family, three_iterations  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)  # as the test runs
    capability = torch.backends.cpu.get_cpu_capability()
    family = kernel_family()
    out = {"torch": str(torch.__version__), "cpu_capability": capability, "kernels": family, "runs": {},
           "why": {**CHANGED, **CHANGED_SAMPLES}}
    for key in sorted({**CHANGED, **CHANGED_SAMPLES}):
        name, kind = key.split("/")
        out["runs"][key] = three_iterations(name, kind)
        print(key, out["runs"][key]["losses"][-1], flush=True)
    path = GOLDEN / "changed" / f"numerics_{family.replace('/', '-')}.pt"
    torch.save(out, path)
    print("wrote", path)
