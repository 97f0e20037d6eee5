"""Local training at the pruned model a node was sent (``"pruned"``; the server's
``pruning``), as Lin et al., "Dynamic Model Pruning with Feedback" (ICLR 2020), train it.

Every step's forward and backward pass runs at ``m * w``. With feedback (DPF) the gradient
taken there updates the dense local weights ``w``, pruned ones included (the straight-through
step of the paper's Algorithm 1), so the update the node returns carries the feedback to the
server's dense weights. Without (gradual and one-shot magnitude pruning) the gradient of a
pruned weight is dropped and the weight stays zero. The masks are the round's: the server
recomputes them between rounds. Torch only, like ``training``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PrunedTraining:
    """The round's masks (parameter name -> 0/1 float tensor) and whether steps reach the
    pruned weights (``feedback``)."""

    masks: dict[str, torch.Tensor]
    feedback: bool

    @classmethod
    def of(
        cls, masks: Mapping[str, np.ndarray], feedback: bool, device: torch.device
    ) -> PrunedTraining | None:
        """Training at the model pruned by ``masks`` (True: kept), or None without masks
        (no pruning, or the dense first round)."""
        if not masks:
            return None
        tensors = {name: torch.from_numpy(m).to(device, torch.float32) for name, m in masks.items()}
        return cls(tensors, feedback)

    @contextmanager
    def step(self, model: torch.nn.Module) -> Iterator[None]:
        """Run the forward and backward pass inside at ``m * w``; on leaving, the dense
        weights come back (feedback) or the pruned weights' gradients are dropped."""
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            dense = {name: parameters[name].clone() for name in self.masks if self.feedback}
            for name, mask in self.masks.items():
                parameters[name].mul_(mask)
        yield
        with torch.no_grad():
            for name, mask in self.masks.items():
                if self.feedback:
                    parameters[name].copy_(dense[name])
                elif parameters[name].grad is not None:
                    parameters[name].grad.mul_(mask)
