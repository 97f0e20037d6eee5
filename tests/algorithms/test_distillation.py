"""FedDF's ensemble distillation on a toy problem, without Flower."""

from __future__ import annotations

import torch
from torch import nn

from stamen.algorithms.distillation import (
    DistillResult,
    DistillSettings,
    accuracy,
    distill,
    ensemble_logits,
    kl_to_ensemble,
)

CLASSES = 3


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in 2-D."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=generator)
    centres = torch.tensor([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return centres[y] + torch.randn(n, 2, generator=generator), y


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def trained(seed: int, x: torch.Tensor, y: torch.Tensor, steps: int = 200) -> nn.Module:
    model = net(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def kl(student: nn.Module, teachers: list[nn.Module], x: torch.Tensor) -> float:
    with torch.no_grad():
        target = ensemble_logits(teachers, x, 64, torch.device("cpu"))
        return float(kl_to_ensemble(student(x), target, 1.0))


def test_distillation_lowers_the_kl_to_the_ensemble_on_held_out_inputs():
    x, y = blobs(600, seed=0)
    # non-iid teachers: each sees two of the three classes
    teachers = [trained(i, x[y != i], y[y != i]) for i in range(CLASSES)]
    student = net(10)
    unlabeled, _ = blobs(2000, seed=1)
    held_out, _ = blobs(500, seed=2)
    before = kl(student, teachers, held_out)
    settings = DistillSettings(steps=300, batch_size=64, lr=0.01, eval_every=50, patience=300)
    result = distill(student, teachers, unlabeled, blobs(300, seed=3), settings)
    after = kl(student, teachers, held_out)
    assert after < 0.2 * before
    assert result.best_accuracy > result.start_accuracy
    assert result.teachers == CLASSES


def misled(keep_start: bool) -> tuple[nn.Module, dict, DistillResult, tuple]:
    """A good student distilled towards a teacher that learned permuted labels."""
    x, y = blobs(600, seed=0)
    student = trained(0, x, y)
    wrong = trained(1, x, (y + 1) % CLASSES)  # ~0% accuracy: distilling towards it hurts
    validation = blobs(300, seed=3)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    settings = DistillSettings(
        steps=200, batch_size=64, lr=0.01, eval_every=20, patience=100, keep_start=keep_start
    )
    result = distill(student, [wrong], blobs(1000, seed=1)[0], validation, settings)
    return student, start, result, validation


def test_with_keep_start_the_student_never_ends_worse_than_its_start_on_validation():
    student, start, result, validation = misled(keep_start=True)
    assert accuracy(student, *validation) == result.best_accuracy == result.start_accuracy
    assert all(torch.equal(start[k], v) for k, v in student.state_dict().items())
    assert result.steps == 100  # early stopping: no gain on the start within the patience


def test_by_default_the_best_distilled_checkpoint_is_returned_even_when_worse():
    student, start, result, validation = misled(keep_start=False)
    assert accuracy(student, *validation) == result.best_accuracy < result.start_accuracy
    assert not all(torch.equal(start[k], v) for k, v in student.state_dict().items())
    assert result.steps == 120  # the first checkpoint (step 20) stays best: patience runs from it


def test_the_gradient_is_clipped_to_the_clip_norm_before_each_step(monkeypatch):
    seen: list[torch.Tensor] = []
    adam_step = torch.optim.Adam.step

    def spy(optimizer, *args, **kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        seen.append(torch.cat([g.flatten() for g in grads]).clone())
        return adam_step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    x, y = blobs(600, seed=0)
    teacher = trained(0, x, y)
    unlabeled = 100 * blobs(500, seed=1)[0]  # far-out inputs: gradient norms in the hundreds
    runs = {}
    for clip_norm in (0.0, 5.0):
        seen.clear()
        settings = DistillSettings(steps=5, batch_size=64, eval_every=5, clip_norm=clip_norm)
        distill(net(5), [teacher], unlabeled, blobs(100, seed=3), settings)
        runs[clip_norm] = list(seen)
    raw, clipped = runs[0.0][0], runs[5.0][0]  # same start and batch: same gradient before
    assert raw.norm() > 50
    torch.testing.assert_close(clipped, raw * 5 / raw.norm())
    assert max(float(g.norm()) for g in runs[5.0]) <= 5 + 1e-4


def test_teachers_below_chance_can_be_dropped():
    x, y = blobs(600, seed=0)
    good = trained(0, x, y)
    wrong = trained(1, x, (y + 1) % CLASSES)  # learns a permutation: ~0% accuracy
    settings = DistillSettings(steps=10, batch_size=64, eval_every=5, drop_weak_teachers=True)
    result = distill(net(5), [good, wrong], blobs(500, seed=1)[0], blobs(300, seed=3), settings)
    assert result.teachers == 1
    kept_all = distill(
        net(5),
        [good, wrong],
        blobs(500, seed=1)[0],
        blobs(300, seed=3),
        DistillSettings(steps=10, batch_size=64, eval_every=5),
    )
    assert kept_all.teachers == 2


def test_ensemble_logits_are_the_mean_of_the_teachers_logits():
    x, _ = blobs(50, seed=0)
    teachers = [net(1), net(2), net(3)]
    with torch.no_grad():
        expected = torch.stack([t(x) for t in teachers]).mean(0)
    torch.testing.assert_close(ensemble_logits(teachers, x, 7, torch.device("cpu")), expected)


def test_kl_is_zero_for_matching_logits_and_scaled_by_temperature_squared():
    logits = torch.randn(8, CLASSES)
    assert float(kl_to_ensemble(logits, logits, 2.0)) < 1e-6
    other = torch.randn(8, CLASSES)
    p = torch.softmax(other / 2, 1)
    by_hand = (p * (p.log() - torch.log_softmax(logits / 2, 1))).sum(1).mean() * 4
    torch.testing.assert_close(kl_to_ensemble(logits, other, 2.0), by_hand)
