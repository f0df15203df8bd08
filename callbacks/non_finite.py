"""Stop a run as soon as training goes non-finite, instead of training on through NaN.

Lightning keeps training when the loss turns NaN or infinite: the run ends with exit 0, ``nan`` in the progress bar
and a "best" checkpoint of garbage weights. :class:`StopOnNonFinite` (in every ``experiments/base/callbacks`` list)
checks each training loss before its backward pass and, where it is cheap, the gradients before the optimizer
step: at the first non-finite value the run stops — before that optimizer step, so no weights derived from it are
ever saved — with one :class:`NonFiniteTraining` message (epoch, step, value, what to try) and, from ``dermlab``,
exit code 2. Every method is covered whatever it logs: the hooks see each backward pass, automatic or manual
(SegAN's critic and segmentor losses both). A non-finite *validation* loss under a finite training loss (the
evaluation-mode path diverged: batch-norm running statistics, an overflow in reduced precision) stops the run the
same way at the end of that validation, before its checkpoints are written.
``--run.stop_on_non_finite false`` removes the callback (Lightning's default behaviour).
"""

from __future__ import annotations

import math

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim import Optimizer
from typing_extensions import override

from dermlab.errors import DataError


class NonFiniteTraining(DataError):
    """The training loss or the gradients became NaN or infinite: the run stopped (one-line message)."""


class NonFiniteValidation(DataError):
    """The validation loss became NaN or infinite while training stayed finite: the run stopped (one line)."""


class StopOnNonFinite(Callback):
    """Raise :class:`NonFiniteTraining` at the first non-finite training loss or gradient, and
    :class:`NonFiniteValidation` at the end of a validation whose ``val/loss`` (every method's name) is non-finite.

    Args:
        check_gradients: also check the gradients before each optimizer step (one fused norm over them). Skipped
            under ``16-mixed`` precision, whose gradient scaler expects overflowing steps and skips them itself.

    Cost: one device-to-host sync of a scalar per optimizer step. Under DDP the gradients are checked after their
    all-reduce, so every process stops at the same step (keep ``check_gradients`` on there).
    """

    def __init__(self, check_gradients: bool = True):
        self.check_gradients = check_gradients
        self._losses: list[torch.Tensor] = []  # detached losses since the last optimizer step

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._losses = []

    @override
    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._losses.append(loss.detach().float().reshape(-1)[:1])

    @override
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: Optimizer) -> None:
        losses, self._losses = self._losses, []
        checks = [torch.stack(losses).squeeze(-1)] if losses else []
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        check_grads = self.check_gradients and bool(grads) and not _has_grad_scaler(trainer)
        if check_grads:
            norms = torch._foreach_norm(grads)  # one fused kernel per device and dtype
            checks.append(torch.stack([n.to(norms[0].device, torch.float32) for n in norms]).sum().reshape(1))
        if not checks or bool(torch.isfinite(torch.cat([c.to(checks[0].device) for c in checks])).all()):
            return
        loss = next((float(v) for v in losses if not math.isfinite(float(v))), None)
        if loss is not None:
            what = f"the training loss is {loss}"
        else:
            last = f", after a loss of {float(losses[-1]):.4g}" if losses else ""
            what = f"the gradients are not finite (norm {float(checks[-1]):g}{last})"
        raise NonFiniteTraining(non_finite_message(trainer, optimizer, what))


    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the epoch's val/loss is aggregated by now; ModelCheckpoint saves later, in on_validation_end, so neither a
        # "best" nor a last.ckpt of this validation is written
        loss = trainer.callback_metrics.get("val/loss")
        if loss is None or bool(torch.isfinite(loss).all()):
            return
        when = ("in the sanity check before training" if trainer.sanity_checking
                else f"after epoch {trainer.current_epoch}, step {trainer.global_step}")
        train = trainer.callback_metrics.get("train/loss_epoch", trainer.callback_metrics.get("train/loss"))
        finite = f" while the training loss is {float(train):.4g}" if train is not None else ""
        raise NonFiniteValidation(
            f"validation diverged: val/loss is {float(loss)} {when}{finite}. The weights or the evaluation-mode "
            "path (batch-norm running statistics, an overflow in reduced precision) went non-finite. The run stopped "
            "before writing this validation's checkpoints (any saved before it are kept). Try a "
            "lower learning rate (--model.init_args.optimizer.init_args.lr) or --trainer.precision 32-true. To "
            "train on regardless, pass --run.stop_on_non_finite false.")


def _has_grad_scaler(trainer: L.Trainer) -> bool:
    return getattr(trainer.precision_plugin, "scaler", None) is not None


def non_finite_message(trainer: L.Trainer, optimizer: Optimizer, what: str) -> str:
    """The one-line message: where (epoch, step, batch), ``what`` went non-finite, and what to try."""
    epoch, step = trainer.current_epoch, trainer.global_step
    batch = trainer.fit_loop.epoch_loop.batch_idx
    lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
    tries = [f"a lower learning rate{f' (now {lr:g})' if isinstance(lr, float | int) else ''}: "
             "--model.init_args.optimizer.init_args.lr"]
    precision = str(trainer.precision)
    if precision not in ("32-true", "64-true", "32", "64"):
        tries.append(f"full precision (now {precision}): --trainer.precision 32-true")
    clip = trainer.gradient_clip_val
    tries.append(f"a smaller --trainer.gradient_clip_val (now {clip:g})" if clip
                 else "gradient clipping: --trainer.gradient_clip_val 1.0")
    return (f"training diverged: {what} at epoch {epoch}, step {step} (batch {batch} of the epoch). The run stopped "
            "before that optimizer step, so no checkpoint holds the non-finite weights (any saved before it are "
            f"kept). Try {'; '.join(tries)}. To train on regardless (Lightning's default), pass "
            "--run.stop_on_non_finite false.")
