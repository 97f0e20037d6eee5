import math

import pytest
import torch

from stamen.algorithms.aggregation.primitives import squared_distances
from stamen.attacks import (
    ALIE,
    IPM,
    KrumAttack,
    Mimic,
    MimicState,
    MinMax,
    MinSum,
    OmniscientAttack,
    alie_z,
)
from stamen.attacks.min_max import perturbation
from stamen.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def honest_updates(h=20, d=30, seed=0):
    return torch.randn(h, d, generator=gen(seed)) + 1.0


def test_alie_z_from_paper_formula():
    # n = 25, f = 5: s = floor(25/2 + 1) - 5 = 8, z = Phi^-1(17/25) = Phi^-1(0.68)
    assert alie_z(25, 5) == pytest.approx(0.4677, abs=1e-4)
    with pytest.raises(ValueError):
        alie_z(10, 6)


def test_alie_is_mean_plus_z_sample_std_of_updates():
    honest = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    out, _ = ALIE(z=1.0).craft(honest, 2, gen())
    # sample std of (0, 2, 4) is 2, of (1, 1, 4) is sqrt(3)
    expected = torch.tensor([2.0 + 2.0, 2.0 + math.sqrt(3.0)])
    torch.testing.assert_close(out, expected.expand(2, 2))


def test_alie_default_z_for_n25_f5():
    honest = honest_updates(h=20)
    out, _ = ALIE().craft(honest, 5, gen())
    expected = honest.mean(0) + 0.46769879911450835 * honest.std(0, unbiased=True)
    torch.testing.assert_close(out, expected.expand(5, -1))


def test_alie_equals_the_authors_gradient_attack_in_update_space():
    # The authors send mu - z * sigma of the honest gradients; an SGD step turns a gradient g
    # into the update -lr * g, so the crafted update must be -lr * (mu - z * sigma).
    gradients = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, 0.5], [2.0, 4.0, 2.0]])
    lr, z = 0.1, 0.7
    out, _ = ALIE(z=z).craft(-lr * gradients, 1, gen())
    mu, sigma = gradients.mean(0), gradients.std(0)
    torch.testing.assert_close(out[0], -lr * (mu - z * sigma))


def test_min_max_std_direction_equals_the_authors_in_update_space():
    # The authors' min-max with dev = std sends mu - gamma * std(gradients), gamma > 0.
    gradients = honest_updates(h=10, d=6)
    lr = 0.1
    out, _ = MinMax(perturbation="std").craft(-lr * gradients, 1, gen())
    authors_direction = -lr * -gradients.std(0)  # the update of -gamma * std, per unit gamma
    step = out[0] - (-lr * gradients).mean(0)
    cosine = torch.dot(step, authors_direction) / (step.norm() * authors_direction.norm())
    assert cosine.item() == pytest.approx(1.0, abs=1e-5)


def test_ipm_is_minus_epsilon_mean_exactly():
    honest = torch.tensor([[1.0, 2.0], [3.0, -6.0]])
    out, _ = IPM(epsilon=0.5).craft(honest, 3, gen())
    assert out.tolist() == [[-1.0, 1.0]] * 3
    assert IPM().epsilon == 0.1


def test_mimic_copies_an_honest_update_and_fixes_it_after_warmup():
    attack = Mimic(warmup=3)
    state = attack.init_state()
    assert state == MimicState()
    targets = []
    for t in range(6):
        honest = honest_updates(h=8, d=12, seed=t)
        out, state = attack.craft(honest, 4, gen(0), state)
        assert state.round == t + 1
        assert torch.equal(out, honest[state.target].expand(4, -1))
        assert state.z.norm().item() == pytest.approx(1.0)
        targets.append(state.target)
    assert len(set(targets[2:])) == 1  # chosen in the last warm-up round, then fixed


def test_mimic_state_evolves_deterministically():
    def run(seed):
        attack, state, outs = Mimic(warmup=2), None, []
        for t in range(4):
            out, state = attack.craft(honest_updates(h=6, d=10, seed=t), 2, gen(seed), state)
            outs.append(out)
        return state, outs

    (s1, o1), (s2, o2) = run(0), run(0)
    assert s1.target == s2.target and torch.equal(s1.z, s2.z) and torch.equal(s1.mu, s2.mu)
    assert all(torch.equal(a, b) for a, b in zip(o1, o2))


def test_mimic_picks_the_extreme_along_the_variance_direction():
    # all variance along axis 0; the target maximises <x, z> with z = +-e0
    honest = torch.tensor([[-3.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    out, state = Mimic(warmup=1).craft(honest, 1, gen(0))
    assert state.z.abs().tolist() == pytest.approx([1.0, 0.0])
    assert state.target in (0, 3)
    assert torch.equal(out[0], honest[state.target])


@pytest.mark.parametrize("kind", ["unit", "std", "sign"])
def test_min_max_meets_its_bound_near_the_boundary(kind):
    honest = honest_updates()
    out, _ = MinMax(perturbation=kind).craft(honest, 3, gen())
    bound = squared_distances(honest.double()).max()
    worst = ((out[0].double() - honest.double()) ** 2).sum(1).max()
    assert worst <= bound * (1 + 1e-6)
    assert worst >= bound * (1 - 1e-3)
    # it lies on the ray mean + gamma * p with gamma > 0
    direction = out[0] - honest.mean(0)
    p = perturbation(honest, kind)
    assert torch.dot(direction, p) > 0
    torch.testing.assert_close(direction / direction.norm(), p / p.norm(), atol=1e-4, rtol=0)


def test_min_sum_meets_the_authors_bound_the_smallest_honest_score():
    honest = honest_updates()
    out, _ = MinSum(perturbation="std").craft(honest, 2, gen())
    bound = squared_distances(honest.double()).sum(1).min()
    total = ((out[0].double() - honest.double()) ** 2).sum()
    assert bound * (1 - 1e-3) <= total <= bound * (1 + 1e-6)


def test_min_sum_with_the_max_threshold_goes_farther():
    honest = honest_updates()
    out, _ = MinSum(perturbation="std", threshold="max").craft(honest, 2, gen())
    bound = squared_distances(honest.double()).sum(1).max()
    total = ((out[0].double() - honest.double()) ** 2).sum()
    assert bound * (1 - 1e-3) <= total <= bound * (1 + 1e-6)
    with pytest.raises(ConfigError, match="min, max"):
        MinSum(threshold="median")


def test_min_max_hand_case():
    # honest (0,0), (2,0): mean (1,0), diameter^2 = 4, unit p = (-1,0);
    # the farther honest point is (2,0): |(1 - g) - 2|^2 <= 4 gives g = 1
    honest = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    out, _ = MinMax().craft(honest, 1, gen())
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0]]), atol=1e-6, rtol=0)


def test_min_max_and_min_sum_reject_bad_perturbation():
    with pytest.raises(ConfigError, match="unit, std, sign"):
        MinMax(perturbation="bogus")


def test_mimic_follows_its_target_client_when_rows_change():
    attack, h = Mimic(warmup=1), 8
    honest = honest_updates(h=h, d=12, seed=0)
    clients = list(range(10, 10 + h))
    _, state = attack.craft(honest, 2, gen(0), None, clients)
    target = state.target
    assert target in clients
    # the next round: other clients missing, rows shuffled, the target's update new
    later = honest_updates(h=5, d=12, seed=1)
    others = [c for c in clients if c != target][:4]
    order = [others[0], others[1], target, others[2], others[3]]
    out, state = attack.craft(later, 2, gen(1), state, order)
    assert state.target == target
    assert torch.equal(out, later[2].expand(2, -1))


def test_mimic_keeps_its_target_through_a_round_without_it():
    attack = Mimic(warmup=1)
    honest = honest_updates(h=6, d=12, seed=0)
    _, state = attack.craft(honest, 1, gen(0), None, [0, 1, 2, 3, 4, 5])
    target = state.target
    present = [c for c in range(6) if c != target]
    out, missing = attack.craft(honest_updates(h=5, d=12, seed=1), 1, gen(1), state, present)
    assert missing.target == target  # copied someone this round, kept the target
    back = honest_updates(h=6, d=12, seed=2)
    out, state = attack.craft(back, 1, gen(2), missing, [0, 1, 2, 3, 4, 5])
    assert torch.equal(out[0], back[target])


ATTACKS = [ALIE(), IPM(), Mimic(warmup=2), MinMax(), MinSum()]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: type(a).__name__)
def test_conformance_shape_no_mutation_determinism(attack: OmniscientAttack):
    honest = honest_updates(h=15, d=9)
    copy = honest.clone()
    out1, _ = attack.craft(honest, 4, gen(7), attack.init_state())
    out2, _ = attack.craft(honest, 4, gen(7), attack.init_state())
    assert out1.shape == (4, 9) and out1.dtype == honest.dtype
    assert torch.equal(honest, copy)
    assert torch.equal(out1, out2)
    assert attack.kind == "omniscient"


@pytest.mark.parametrize("attack", [ALIE(), IPM(), KrumAttack(), MinMax(), MinSum()])
def test_no_byzantine_clients_get_no_rows(attack: OmniscientAttack):
    honest = honest_updates(h=6, d=5)
    out, state = attack.craft(honest, 0, gen(), attack.init_state())
    assert out.shape == (0, 5) and out.dtype == honest.dtype and state is None


def test_bad_honest_shape():
    with pytest.raises(ValueError, match=r"\(h, d\)"):
        IPM().craft(torch.zeros(3), 1, gen())
