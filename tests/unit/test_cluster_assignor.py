"""The scale-out assignor: sticky, weighted by streams, and two-step moves (withheld)."""

from __future__ import annotations

import math
import random

import pytest

from vigil.cluster.assignor import Claim, place, streams_moved, unbalanced

P = range(24)


def spread(placement, weights):
    return sorted(sum(weights.get(p, 0) for p in ps) for ps in placement.target.values())


def one_stream_each(partitions):
    return {p: 1 for p in partitions}


def test_place_when_three_new_members_then_streams_and_partitions_even_out():
    weights = one_stream_each([0, 3, 5, 6, 7, 9, 11, 12, 15, 18, 20, 23])
    placement = place({m: Claim(m) for m in ("a", "b", "c")}, P, weights)
    assert spread(placement, weights) == [4, 4, 4]
    assert sorted(len(ps) for ps in placement.assignment.values()) == [8, 8, 8]
    assert not placement.withheld
    owned = [p for ps in placement.assignment.values() for p in ps]
    assert sorted(owned) == list(P)


def test_place_when_skewed_hash_then_streams_balance_not_partitions():
    # 12 streams hashed into only 5 partitions (2-3 per partition): balance by streams
    weights = {0: 3, 1: 3, 2: 2, 3: 2, 4: 2}
    placement = place({m: Claim(m) for m in ("a", "b", "c")}, P, weights)
    loads = spread(placement, weights)
    assert loads[-1] - loads[0] <= 1 + 1  # partitions of 2-3 streams cannot split finer
    assert sum(loads) == 12


def _join(rng, weights):
    members = [f"m{i}" for i in range(rng.randint(1, 5))]
    first = place({m: Claim(m) for m in members}, P, weights)
    claims = {m: Claim(m, first.target[m], 3) for m in members}
    claims["new"] = Claim("new")
    return members, first, place(claims, P, weights)


def test_place_when_a_member_joins_then_at_most_ceil_s_over_n_streams_move_all_to_it():
    rng = random.Random(7)
    for _ in range(300):
        # one stream per partition (the control topic has more partitions than streams)
        weights = one_stream_each(rng.sample(list(P), rng.randint(1, 24)))
        members, first, second = _join(rng, weights)
        moved = streams_moved(first.target, second, weights)
        assert moved <= math.ceil(len(weights) / (len(members) + 1))
        for m in members:  # streams move to the newcomer only (empty partitions may even out)
            assert {p for p in second.target[m] if p in weights} <= first.target[m]
        # nobody is given a partition a live member still runs: those are withheld
        assert not second.assignment["new"] & set().union(*first.target.values())


def test_place_when_partitions_hold_several_streams_then_a_join_moves_little():
    rng = random.Random(11)
    for _ in range(300):
        weights: dict[int, int] = {}
        for _ in range(rng.randint(1, 40)):
            p = rng.randrange(24)
            weights[p] = weights.get(p, 0) + 1
        members, first, second = _join(rng, weights)
        moved = streams_moved(first.target, second, weights)
        # a partition moves whole: one partition's worth more than the one-stream bound
        streams = sum(weights.values())
        assert moved <= math.ceil(streams / (len(members) + 1)) + max(weights.values()) - 1


def test_place_when_a_partition_moves_from_a_live_owner_then_it_is_withheld():
    weights = one_stream_each(range(12))
    first = place({"a": Claim("a"), "b": Claim("b")}, range(12), weights)
    claims = {m: Claim(m, first.target[m], 0) for m in ("a", "b")} | {"c": Claim("c")}
    second = place(claims, range(12), weights)
    assert len(second.withheld) == 4
    assert second.assignment["c"] == frozenset()  # gets them in the follow-up rebalance
    assert second.target["c"] == second.withheld
    # the follow-up: the old owners no longer claim the withheld partitions
    follow = {m: Claim(m, second.assignment[m], 1) for m in ("a", "b", "c")}
    third = place(follow, range(12), weights)
    assert third.assignment["c"] == second.withheld
    assert not third.withheld


def test_place_when_a_member_dies_then_only_its_partitions_move_at_once():
    weights = one_stream_each(range(12))
    first = place({m: Claim(m) for m in "abc"}, range(12), weights)
    survivors = {m: Claim(m, first.target[m], 0) for m in "ab"}
    second = place(survivors, range(12), weights)
    assert not second.withheld  # nobody alive ran them: no two-step move
    for m in "ab":
        assert first.target[m] <= second.assignment[m]
    assert spread(second, weights) == [6, 6]


def test_place_when_two_members_claim_a_partition_then_the_newer_epoch_wins():
    claims = {
        "stale": Claim("stale", frozenset({1, 2}), 3),
        "fresh": Claim("fresh", frozenset({2}), 5),
    }
    placement = place(claims, range(4), {1: 1, 2: 1})
    assert 2 in placement.assignment["fresh"]
    assert 2 not in placement.assignment["stale"]


def test_claim_when_user_data_is_garbage_then_it_claims_nothing():
    assert Claim.decode(b"\xff not json") == Claim("?")
    assert Claim.decode(Claim("w", frozenset({3}), 2).encode()) == Claim("w", frozenset({3}), 2)


def test_unbalanced_when_streams_were_added_to_one_member_then_true():
    owned = {"a": range(0, 12), "b": range(12, 24)}
    assert not unbalanced(owned, P, {0: 1, 13: 1})
    assert unbalanced(owned, P, {0: 1, 1: 1, 2: 1, 3: 1, 13: 1})


def test_place_when_a_member_dies_then_the_survivors_keep_every_stream_they_run():
    # 3 survivors with 3 streams each; the dead one's 3 streams sit in 2 partitions (2 + 1):
    # 5/4/3 is within one of the mean, so no survivor's stream is restarted to reach 4/4/4
    claims = {
        "a": Claim("a", frozenset({0, 1, 2}), 4),
        "b": Claim("b", frozenset({3, 4, 5}), 4),
        "c": Claim("c", frozenset({6, 7, 8}), 4),
    }
    weights = one_stream_each(range(9)) | {9: 2, 10: 1}
    placement = place(claims, range(12), weights)
    assert not placement.withheld
    for m, claim in claims.items():
        assert claim.owned <= placement.assignment[m]
    assert spread(placement, weights) == [3, 4, 5]


def test_place_when_streams_pile_up_on_one_member_then_running_ones_move_past_a_gap_of_2():
    claims = {m: Claim(m, frozenset(range(i * 8, i * 8 + 8)), 2) for i, m in enumerate("abc")}
    weights = one_stream_each([0, 1, 2, 3, 4, 5, 8, 16])  # 6/1/1
    placement = place(claims, P, weights)
    loads = spread(placement, weights)
    assert loads[-1] - loads[0] <= 2
    assert placement.withheld  # running streams moved: two-step


# --- a per-worker cap (cluster.max_streams) ---------------------------------------------------


def test_claim_carries_the_cap_and_garbage_caps_nothing():
    assert Claim.decode(Claim("a", frozenset({1}), 3, cap=5).encode()).cap == 5
    assert Claim.decode(Claim("a").encode()).cap is None


def test_place_when_a_member_has_a_cap_then_it_gets_no_more_and_the_rest_share():
    weights = dict.fromkeys(range(12), 1)
    claims = {"a": Claim("a", cap=2), "b": Claim("b"), "c": Claim("c")}
    placement = place(claims, range(24), weights)
    load = {m: sum(weights.get(p, 0) for p in ps) for m, ps in placement.target.items()}
    assert load["a"] == 2
    assert sorted([load["b"], load["c"]]) == [5, 5]


def test_place_when_nobody_has_room_then_the_rest_waits_unplaced():
    weights = dict.fromkeys(range(12), 1)
    claims = {m: Claim(m, cap=2) for m in "abc"}
    placement = place(claims, range(12), weights)
    placed = set().union(*placement.target.values())
    assert all(sum(weights[p] for p in ps) == 2 for ps in placement.target.values())
    assert len(placed) == 6  # 6 streams wait until a worker has room
    assert placement.partitions == frozenset(range(12))
    assert unbalanced(placement.assignment, range(12), weights, placement.caps) is False


def test_place_when_a_member_is_over_its_cap_then_it_sheds_running_partitions_to_others():
    weights = dict.fromkeys(range(8), 1)
    claims = {
        "a": Claim("a", frozenset(range(6)), epoch=3, cap=3),
        "b": Claim("b", frozenset({6, 7}), epoch=3),
    }
    placement = place(claims, range(8), weights)
    assert sum(weights[p] for p in placement.target["a"]) == 3
    assert len(placement.withheld) == 3  # stopped by a first, started by b in the follow-up
    assert placement.withheld <= set(range(6))
    assert placement.withheld <= placement.target["b"]


def test_place_when_a_member_is_over_its_cap_and_nobody_has_room_then_it_keeps_them():
    weights = dict.fromkeys(range(8), 1)
    claims = {
        "a": Claim("a", frozenset(range(6)), epoch=3, cap=3),
        "b": Claim("b", frozenset({6, 7}), epoch=3, cap=2),
    }
    placement = place(claims, range(8), weights)
    assert placement.withheld == frozenset()
    assert placement.target["a"] == frozenset(range(6))  # it runs 3, the others wait there


@pytest.mark.parametrize("seed", range(100))
def test_place_with_random_caps_never_puts_a_fresh_member_over_its_cap(seed):
    rng = random.Random(seed)
    partitions = range(rng.randint(1, 30))
    weights = {p: rng.choice([0, 0, 1, 1, 2, 3]) for p in partitions}
    claims = {
        m: Claim(m, cap=rng.choice([None, 0, 1, 2, 5, 10])) for m in "abcd"[: rng.randint(1, 4)]
    }
    placement = place(claims, partitions, weights)
    for m, ps in placement.target.items():
        cap = claims[m].cap
        assert cap is None or sum(weights[p] for p in ps) <= cap, (m, cap, ps)
    # and nothing placeable is left out: an unplaced partition fits nowhere
    placed = set().union(*placement.target.values())
    for p in set(partitions) - placed:
        for m, ps in placement.target.items():
            cap = claims[m].cap
            assert cap is not None
            assert sum(weights[q] for q in ps) + weights[p] > cap


def test_place_when_a_member_holds_only_empty_partitions_then_it_still_gets_a_stream():
    # The state a preempted two-step move left once: the third member had been given two
    # empty partitions, which made it look like an old member content with none of the 4
    # streams (2/2/0). A member that runs no stream takes one like a newcomer.
    claims = {
        "a": Claim("a", frozenset({8, 9, 10, 11}), 6),
        "b": Claim("b", frozenset({0, 1, 2, 3, 4, 5}), 6),
        "c": Claim("c", frozenset({6, 7}), 6),
    }
    weights = {3: 1, 5: 1, 9: 1, 11: 1}
    placement = place(claims, range(12), weights)
    per_member = {m: sum(weights.get(p, 0) for p in ps) for m, ps in placement.target.items()}
    assert per_member["c"] == 1, placement
    assert sorted(per_member.values()) == [1, 1, 2]
    assert streams_moved({m: c.owned for m, c in claims.items()}, placement, weights) == 1
