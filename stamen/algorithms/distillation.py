"""Ensemble distillation, FedDF's server step (Lin, Kong, Stich, Jaggi, arXiv 2006.07242).

A student (the FedAvg model of one architecture group) is trained on unlabeled inputs to
match the ensemble of all received client models: the KL divergence between the softmax of
the teachers' averaged logits and the student's, at temperature ``T`` (times ``T**2``, so
gradients keep their scale), with Adam and a cosine learning-rate schedule; the gradient's
norm is clipped at ``clip_norm`` before each step (5, as in the authors' code). Every
``eval_every`` steps the student is scored on a labeled validation split; training stops
at the first evaluation ``patience`` or more steps after the last gain, and the best
checkpoint is returned.

Which checkpoints compete: by default, as the authors run it, only the distilled ones (the
first evaluation is always the best so far, and ``patience`` counts from the best distilled
checkpoint), so the returned student can be worse on validation than the FedAvg start.
``keep_start=True`` also lets the start compete, scored before the first step: a checkpoint
must then beat it strictly, and the student is never worse on validation than where it
started (the authors' ``return_best_model_on_val``, off by default).

The teachers' logits are computed once per call, not at every step: they do not change while
the student trains. Plain torch, no Flower; runs on whichever device is given.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class DistillSettings:
    """FedDF's server-side hyper-parameters; the defaults are those of the paper and its code."""

    steps: int = 10_000
    batch_size: int = 128
    lr: float = 1e-3
    temperature: float = 1.0
    eval_every: int = 100
    patience: int = 1_000  # steps without a validation gain before stopping
    drop_weak_teachers: bool = False  # drop teachers below chance on validation
    clip_norm: float = 5.0  # the gradient's total norm is clipped at this (0: no clipping)
    keep_start: bool = False  # the start competes with the distilled checkpoints
    seed: int = 0


@dataclass(frozen=True)
class DistillResult:
    steps: int  # steps taken (< settings.steps when stopped early)
    start_accuracy: float  # the student's validation accuracy before distillation
    best_accuracy: float  # that of the student returned
    teachers: int  # teachers used (after dropping weak ones)
    seconds: float


def distill(
    student: nn.Module,
    teachers: Sequence[nn.Module],
    unlabeled: Tensor,
    validation: tuple[Tensor, Tensor],
    settings: DistillSettings,
    device: torch.device | None = None,
) -> DistillResult:
    """Distill ``teachers`` into ``student`` in place and return what happened.

    Parameters
    ----------
    student : nn.Module
        Starts from the group's FedAvg model; holds the best candidate on return: the
        distilled checkpoint with the highest validation accuracy (the earliest on ties), or
        the start if ``settings.keep_start`` and no checkpoint beats it (or no step is taken).
    teachers : sequence of nn.Module
        All received client models, of any architectures with the same outputs.
    unlabeled : Tensor, shape (n, ...)
        Distillation inputs, as the models take them.
    validation : (Tensor, Tensor)
        Labeled inputs and int64 labels for model selection and early stopping.
    device : torch.device, optional
        Where to compute; the student's device by default.
    """
    started = time.perf_counter()
    device = device or next(student.parameters()).device
    student.to(device)
    val_x, val_y = (t.to(device) for t in validation)
    if settings.drop_weak_teachers:
        chance = 1.0 / _num_classes(student, val_x)
        kept = [t for t in teachers if accuracy(t.to(device), val_x, val_y) >= chance]
        teachers = kept or list(teachers)
    target = ensemble_logits(teachers, unlabeled, settings.batch_size, device)
    start_accuracy = accuracy(student, val_x, val_y)
    # the start is a candidate only when kept; otherwise any first checkpoint beats it
    best_accuracy = start_accuracy if settings.keep_start else -math.inf
    best_state, best_step = copy.deepcopy(student.state_dict()), 0
    optimizer = torch.optim.Adam(student.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps)
    generator = torch.Generator().manual_seed(settings.seed)
    temperature = settings.temperature
    step = 0
    while step < settings.steps:
        batch = torch.randint(len(unlabeled), (settings.batch_size,), generator=generator)
        student.train()
        logits = student(unlabeled[batch].to(device))
        loss = kl_to_ensemble(logits, target[batch.to(device)], temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip_norm > 0:
            nn.utils.clip_grad_norm_(student.parameters(), settings.clip_norm)
        optimizer.step()
        schedule.step()
        step += 1
        if step % settings.eval_every == 0 or step == settings.steps:
            score = accuracy(student, val_x, val_y)
            if score > best_accuracy:
                best_accuracy, best_step = score, step
                best_state = copy.deepcopy(student.state_dict())
            if step - best_step >= settings.patience:  # checked at evaluations, as the authors do
                break
    student.load_state_dict(best_state)
    best_accuracy = best_accuracy if step else start_accuracy  # no step: the start returned
    seconds = time.perf_counter() - started
    return DistillResult(step, start_accuracy, best_accuracy, len(teachers), seconds)


def kl_to_ensemble(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2


@torch.no_grad()
def ensemble_logits(
    teachers: Sequence[nn.Module], inputs: Tensor, batch_size: int, device: torch.device
) -> Tensor:
    """The teachers' averaged logits on every input, shape (n, classes), on ``device``."""
    total = None
    for teacher in teachers:
        teacher.to(device).eval()
        logits = torch.cat(
            [
                teacher(inputs[i : i + batch_size].to(device))
                for i in range(0, len(inputs), batch_size)
            ]
        )
        total = logits if total is None else total + logits
    return total / len(teachers)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / max(len(x), 1)


@torch.no_grad()
def _num_classes(model: nn.Module, x: Tensor) -> int:
    model.eval()
    return model(x[:1]).shape[1]
