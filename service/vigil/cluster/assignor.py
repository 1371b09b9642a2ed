"""Which worker owns which partition of the control topic: a sticky, stream-weighted assignor
for Kafka's consumer-group protocol.

The group leader (the member Kafka picks) computes the assignment from what every member sent
in its JoinGroup: a :class:`Claim` of the partitions it runs now. The rules:

1. **Sticky**: a member keeps what it claims (on a conflict, the claim stamped with the newer
   assignment epoch wins: a member that was paused and thrown out comes back with an old one).
2. **Weighted by streams**: partitions nobody claims (those of a dead member, new ones) go,
   heaviest first, to the member running the fewest streams; then partitions move from the
   member with the most streams to the one with the fewest while that evens them out, and
   empty partitions even out the partition counts (where future streams land).
3. **Safe under the eager protocol**: aiokafka revokes every partition before every rebalance,
   so a member cannot tell "moving away" from "staying" at revocation time. A partition that
   moves from a live owner is therefore *withheld*: given to nobody in this generation, so its
   owner stops its streams when the assignment arrives, and the leader asks for a follow-up
   rebalance in which the partition, now unclaimed, goes to its new owner. The new owner can
   only start once the old one stopped (the follow-up generation completes only after every
   member has rejoined, i.e. finished handling the previous assignment). This is the two-step
   move of Kafka's cooperative protocol (KIP-429), done inside the assignor.

A join or leave thus moves only the streams it must: a leaving member's, or as many as make
the newcomer even (at most ⌈S/N⌉ with one stream per partition).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """What a member tells the leader when it joins.

    Attributes:
        worker: The member's worker id (for logs and the status topic).
        owned: Partitions whose streams it runs now.
        epoch: The assignment epoch it last received (-1: none yet).
        cap: The most streams it takes (``cluster.max_streams``; None: no limit).
    """

    worker: str
    owned: frozenset[int] = frozenset()
    epoch: int = -1
    cap: int | None = None

    def encode(self) -> bytes:
        """The JoinGroup user data."""
        data = {"v": 1, "worker": self.worker, "owned": sorted(self.owned), "epoch": self.epoch}
        if self.cap is not None:
            data["cap"] = self.cap
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> Claim:
        """A claim from user data; unreadable data claims nothing (never fails a join)."""
        try:
            raw = json.loads(data or b"{}")
            cap = raw.get("cap")
            return cls(
                str(raw.get("worker", "?")),
                frozenset(int(p) for p in raw.get("owned", [])),
                int(raw.get("epoch", -1)),
                None if cap is None else max(0, int(cap)),
            )
        except (ValueError, TypeError, AttributeError):
            return cls("?")


@dataclass(frozen=True)
class Placement:
    """The leader's decision for one generation.

    Attributes:
        assignment: Member id → the partitions it owns in this generation.
        target: Member id → the partitions it will own once withheld ones are handed over.
        withheld: Partitions that move from a live owner: nobody owns them this generation.
        caps: Member id → its cap (None: no limit), as claimed.
        partitions: Every partition placed (some may be in no target: nobody had room).
    """

    assignment: dict[str, frozenset[int]]
    target: dict[str, frozenset[int]]
    withheld: frozenset[int] = field(default_factory=frozenset)
    caps: dict[str, int | None] = field(default_factory=dict)
    partitions: frozenset[int] = field(default_factory=frozenset)


def place(
    claims: Mapping[str, Claim], partitions: Iterable[int], weights: Mapping[int, int]
) -> Placement:
    """Assign ``partitions`` to the members of ``claims`` (member id → claim).

    Args:
        claims: Every member's claim.
        partitions: The control topic's partitions.
        weights: Streams per partition (missing: 0).
    """
    valid = set(partitions)
    members = sorted(claims)
    if not members:
        return Placement({}, {})

    def weight(p: int) -> int:
        return weights.get(p, 0)

    # 1. Sticky: each partition stays with its claimant; the newest epoch wins a conflict.
    holder: dict[int, tuple[int, str]] = {}
    for member in members:
        claim = claims[member]
        for p in claim.owned & valid:
            if p not in holder or claim.epoch > holder[p][0]:
                holder[p] = (claim.epoch, member)
    target: dict[str, set[int]] = {m: set() for m in members}
    for p, (_, member) in holder.items():
        target[member].add(p)

    caps = {m: claims[m].cap for m in members}

    def streams(m: str) -> int:
        return sum(weight(p) for p in target[m])

    # A member that runs no stream yet (a newcomer, or one given only empty partitions by
    # an earlier step) takes running streams down to a gap of 1; see step 3.
    claimed = {m: streams(m) for m in members}

    def room(m: str, w: int) -> bool:
        cap = caps[m]
        return cap is None or streams(m) + w <= cap

    # Ties go to the member that claimed least (a newcomer), so moves go to it, not between
    # members that were already even.
    def load(m: str) -> tuple[int, int, int, str]:
        return streams(m), len(target[m]), claimed[m], m

    # 1b. A member above its cap (lowered, or streams added to its partitions) gives up
    # running partitions, lightest first, as long as another member has room for them.
    loose = valid - holder.keys()
    for m in members:
        for p in sorted((p for p in target[m] if weight(p)), key=lambda p: (weight(p), p)):
            if room(m, 0):
                break
            if any(room(o, weight(p)) for o in members if o != m):
                target[m].remove(p)
                loose.add(p)

    # 2. Loose partitions, heaviest first, to the least loaded member with room for them;
    # one nobody has room for goes back to its holder, or waits (its streams are pending).
    for p in sorted(loose, key=lambda p: (-weight(p), p)):
        fits = [m for m in members if room(m, weight(p))]
        if fits:
            target[min(fits, key=load)].add(p)
        elif p in holder:
            target[holder[p][1]].add(p)

    # 3. Even out streams: move a partition from the most to the least loaded member while
    # that narrows the gap (0 < w < gap keeps both ends strictly inside it, so this ends).
    # Moving a partition nobody runs yet is free; moving a running one restarts its streams,
    # so that is done only towards a newcomer (down to a gap of 1) or past a gap of 2 (every
    # member stays within one stream of the mean): a death restarts only the dead worker's.
    # A member at its cap takes nothing more.
    while True:
        hi = max(members, key=load)
        open_members = [m for m in members if m != hi and room(m, 1)]
        if not open_members:
            break
        lo = min(open_members, key=load)
        gap = load(hi)[0] - load(lo)[0]
        if gap <= 1:
            break
        fits = [p for p in target[hi] if 0 < weight(p) < gap and room(lo, weight(p))]
        tolerated = 1 if claimed[lo] == 0 else 2
        candidates = [p for p in fits if p not in holder] or (
            [p for p in fits if p in holder] if gap > tolerated else []
        )
        if not candidates:
            break
        # the move that evens best; on a tie the fewer streams
        p = min(candidates, key=lambda p: (abs(gap - 2 * weight(p)), weight(p), p))
        target[hi].remove(p)
        target[lo].add(p)

    # 4. Even out partition counts with empty partitions (where new streams will land).
    def count(m: str) -> tuple[int, int, str]:
        return len(target[m]), claimed[m], m

    while True:
        hi, lo = max(members, key=count), min(members, key=count)
        empty = [p for p in target[hi] if weight(p) == 0]
        if len(target[hi]) - len(target[lo]) <= 1 or not empty:
            break
        # an unclaimed one first: it moves without a follow-up rebalance
        p = min(empty, key=lambda p: (p in holder, p))
        target[hi].remove(p)
        target[lo].add(p)

    # 5. A partition a live member still runs goes to nobody else in this generation.
    withheld = {p for p, (_, member) in holder.items() if p not in target[member]}
    return Placement(
        assignment={m: frozenset(target[m] - withheld) for m in members},
        target={m: frozenset(target[m]) for m in members},
        withheld=frozenset(withheld),
        caps=caps,
        partitions=frozenset(valid),
    )


def streams_moved(
    before: Mapping[str, Iterable[int]], after: Placement, weights: Mapping[int, int]
) -> int:
    """Streams whose partition ends up with another member than in ``before``."""
    owner = {p: m for m, ps in before.items() for p in ps}
    return sum(weights.get(p, 0) for m, ps in after.target.items() for p in ps if owner.get(p) != m)


class StreamAssignor(AbstractPartitionAssignor):
    """The group's assignment strategy: :func:`place` on the control topic.

    One instance per consumer (it remembers this member's claim and whether it led the last
    rebalance), passed in ``partition_assignment_strategy``.

    Args:
        topic: The control topic.
        worker: This worker's id.
        weights: Streams per partition as this member knows them now (used when it leads).
        cap: The most streams this member takes (None: no limit).
    """

    name = "vigil-streams"
    version = 1

    def __init__(
        self,
        topic: str,
        worker: str,
        weights: Callable[[], Mapping[int, int]],
        cap: int | None = None,
    ) -> None:
        self.topic = topic
        self.worker = worker
        self.weights = weights
        self.cap = cap
        #: Partitions whose streams this member runs (the worker keeps it current).
        self.owned: frozenset[int] = frozenset()
        self.epoch = -1
        #: The placement this member computed, if it led the latest rebalance.
        self.led: Placement | None = None

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        """This member's subscription and :class:`Claim` (called at every join)."""
        self.led = None
        claim = Claim(self.worker, self.owned, self.epoch, self.cap)
        return ConsumerProtocolMemberMetadata(self.version, list(topics), claim.encode())

    def assign(  # type: ignore[override]
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        """Run by the leader only: every member's partitions for the next generation."""
        claims = {m: Claim.decode(meta.user_data) for m, meta in members.items()}
        partitions: Sequence[int] = sorted(cluster.partitions_for_topic(self.topic) or ())
        weights = dict(self.weights())
        placement = place(claims, partitions, weights)
        epoch = max((c.epoch for c in claims.values()), default=-1) + 1
        self.led = placement
        log.info(
            "assignment epoch %d: %s%s",
            epoch,
            {claims[m].worker: sorted(ps) for m, ps in placement.assignment.items()},
            f", withheld until the next rebalance: {sorted(placement.withheld)}"
            if placement.withheld
            else "",
        )
        user_data = json.dumps({"epoch": epoch}).encode()
        return {
            m: ConsumerProtocolMemberAssignment(self.version, [(self.topic, sorted(ps))], user_data)
            for m, ps in placement.assignment.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        """Remember the epoch the leader stamped on this generation."""
        try:
            self.epoch = int(json.loads(assignment.user_data or b"{}").get("epoch", self.epoch))
        except (ValueError, TypeError, AttributeError):
            log.warning("assignment without a readable epoch; keeping %d", self.epoch)


def unbalanced(
    owned: Mapping[str, Iterable[int]],
    partitions: Iterable[int],
    weights: Mapping[int, int],
    caps: Mapping[str, int | None] | None = None,
) -> bool:
    """Whether :func:`place` would move something if the members kept ``owned`` (member id →
    partitions) with ``caps`` (member id → cap): the leader then asks for a rebalance."""
    caps = caps or {}
    claims = {m: Claim(m, frozenset(ps), 0, caps.get(m)) for m, ps in owned.items()}
    placement = place(claims, partitions, weights)
    return bool(placement.withheld) or any(
        placement.assignment[m] != frozenset(ps) for m, ps in owned.items()
    )
