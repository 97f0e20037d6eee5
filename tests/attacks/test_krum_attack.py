import torch

from stamen.algorithms.aggregation import Krum, krum_scores
from stamen.attacks import KrumAttack


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def brute_force_krum_scores(x, f):
    n = len(x)
    scores = []
    for i in range(n):
        d = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(n) if j != i)
        scores.append(sum(d[: n - f - 2]))
    return torch.tensor(scores, dtype=torch.float64)


def test_krum_scores_match_brute_force():
    x = torch.randn(9, 4, generator=gen(1), dtype=torch.float64)
    sq = torch.cdist(x, x) ** 2
    torch.testing.assert_close(krum_scores(sq, 2), brute_force_krum_scores(x, 2))


def test_krum_selects_a_byzantine_update():
    honest = torch.randn(16, 20, generator=gen(2)) + 0.5
    attack = KrumAttack()
    out, _ = attack.craft(honest, 4, gen())
    allv = torch.cat([honest, out]).double()
    chosen = int(brute_force_krum_scores(allv, 4).argmin())
    assert chosen >= 16
    # it points against the honest direction: -lambda * sign(mean)
    lam = out[0].abs()[0]
    assert lam > 0
    torch.testing.assert_close(out[0], -lam * torch.sign(honest.mean(0)))
    assert torch.equal(out[0], out[3])


def test_the_krum_rule_picks_the_crafted_update():
    honest = torch.randn(16, 20, generator=gen(2)) + 0.5
    out, _ = KrumAttack().craft(honest, 4, gen())
    chosen, _ = Krum(f=4).aggregate(torch.cat([honest, out]))
    assert torch.equal(chosen, out[0])


def test_lambda_upper_bound_hand_case():
    # n = 5, f = 1, d = 1: honest 0, 1, 3, 4; n - f - 2 = 2 nearest
    honest = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    # neighbour sums: 0:1+3=4, 1:1+2=3, 3:1+2=3, 4:1+3=4 -> min 3; max norm 4
    # lambda = 3 / ((5 - 2 - 1) * 1) + 4 / 1 = 5.5
    assert KrumAttack().lambda_upper_bound(honest, 1) == 5.5


def test_inputs_not_mutated_and_deterministic():
    honest = torch.randn(10, 6, generator=gen(3))
    copy = honest.clone()
    a, _ = KrumAttack().craft(honest, 3, gen(0))
    b, _ = KrumAttack().craft(honest, 3, gen(5))
    assert torch.equal(a, b) and torch.equal(honest, copy)
