"""What a training run tells its user: the console lines, ``train.log``, and the end summary.

Two audiences, two channels (set up by ``conf/hydra/job_logging/zoo.yaml``, which
``conf/train.yaml`` selects): the console shows the progress bar, our own lines (:func:`say`)
and warnings; the run directory's ``train.log`` gets all of that plus the details (the
resolved config, the data, progress milestones, the metrics) at INFO level, which the console
handler (level WARNING) does not repeat. :func:`route_library_logs` makes Lightning's loggers
feed the same file: Lightning gives its logger a handler of its own and stops propagation when
it is imported before logging is configured, which is why ``train.log`` used to stay empty.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger("zoo.run")

# Loggers of the libraries whose INFO lines (devices, "max_steps reached") belong in train.log.
LIBRARY_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")


def say(message: str) -> None:
    """A line for the user: printed to the console and written to ``train.log``."""
    print(message, flush=True)
    log.info(message)


def route_library_logs(names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Send Lightning's log records to the root handlers (console at WARNING, ``train.log``
    at INFO) instead of the stderr handler Lightning installs for itself; and route Python
    warnings through logging (``logging.captureWarnings``) so they reach ``train.log`` too.

    Only when the root logger has handlers (a Hydra run): elsewhere nothing changes."""
    if not logging.getLogger().handlers:
        return
    for name in names:
        lib = logging.getLogger(name)
        lib.handlers = [h for h in lib.handlers if type(h) is not logging.StreamHandler]
        lib.propagate = True
    logging.captureWarnings(True)


def command_line(module: str, *args: str) -> str:
    """``python -m <module> <args>`` with every argument quoted for a POSIX shell."""
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])


def run_summary(
    run_dir: Path,
    checkpoint: Path,
    tensorboard: bool,
    files: Mapping[str, Path | None],
) -> list[str]:
    """The lines that end a run: where its results are and what to type next.

    Args:
        run_dir: the run directory.
        checkpoint: the final checkpoint (``last.ckpt``).
        tensorboard: whether a TensorBoard log was written (to ``<run_dir>/tensorboard``).
        files: ``renders`` (folder), ``mesh``, ``metrics`` (JSON), ``log``; those that are
            None or missing are left out.
    """
    lines = [f"results in {run_dir}:"]
    for key in ("renders", "mesh", "metrics", "log"):
        path = files.get(key)
        if path is not None and Path(path).exists():
            suffix = "/" if Path(path).is_dir() else ""
            lines.append(f"  {key + ':':<13}{path}{suffix}")
    if tensorboard:
        logdir = shlex.quote(str(run_dir / "tensorboard"))
        lines.append(f"  {'tensorboard:':<13}tensorboard --logdir {logdir}")
    ckpt = str(checkpoint)
    lines += [
        "next:",
        f"  {'sample:':<13}{command_line('zoo.sample', f'ckpt={ckpt}')}",
        f"  {'evaluate:':<13}{command_line('zoo.eval', f'ckpt={ckpt}')}",
        f"  {'view:':<13}{command_line('zoo.view', f'ckpt={ckpt}')}",
    ]
    return lines


__all__ = ["command_line", "route_library_logs", "run_summary", "say"]
