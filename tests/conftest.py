"""Suite-wide set-up: one CPU thread budget shared by the pytest-xdist workers.

The suite runs on two workers (``-n 2`` in pyproject's addopts; ``-n 0`` runs it in one
process). Each worker, and every CLI subprocess a test starts (they inherit the environment),
gets ``cpu_count // workers`` torch threads, so two workers do not fight over a 2-core machine.
"""

from __future__ import annotations

import os

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

    import torch

    torch.set_num_threads(int(_threads))
