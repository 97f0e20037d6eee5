"""Client sampling depends only on (seed, round), and train messages go out in node order."""

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg

from stamen.clients.client_app import app
from stamen.simulations.inline_engine import InlineGrid
from stamen.strategies.seeded_sampling import SeededSampling


def destinations(strategy, grid, server_round):
    messages = strategy.configure_train(server_round, ArrayRecord(), ConfigRecord(), grid)
    return [m.metadata.dst_node_id for m in messages]


def test_train_messages_follow_the_grids_node_order_every_round():
    grid = InlineGrid(app, {}, 12)
    order = grid.get_node_ids()
    full = SeededSampling(FedAvg(fraction_train=1.0, min_available_nodes=12), seed=0)
    # flwr samples all 12 in random.sample's order; the rows of the round must not move
    assert all(destinations(full, grid, r) == order for r in range(1, 6))
    sampled = SeededSampling(FedAvg(fraction_train=0.5, min_available_nodes=12), seed=0)
    rounds = [destinations(sampled, grid, r) for r in range(1, 6)]
    assert all(d == sorted(d, key=order.index) and len(d) == 6 for d in rounds)
    assert len({tuple(d) for d in rounds}) > 1  # other clients in other rounds
    assert rounds[2] == destinations(sampled, grid, 3)  # and the same ones again for a round
