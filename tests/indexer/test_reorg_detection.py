"""Reorg detection as pure decisions over headers: one named test per case."""

from __future__ import annotations

from indexer.reorg import NewBlock, checkpoint_still_canonical, common_ancestor, finalized, link
from indexer.store import BlockRef


def chain(start: int, count: int, fork: str = "a", parent: str | None = None) -> list[BlockRef]:
    blocks, prev = [], parent if parent is not None else f"{fork}{start - 1}"
    for n in range(start, start + count):
        blocks.append(BlockRef(n, f"{fork}{n}", prev, 1_000 + n))
        prev = f"{fork}{n}"
    return blocks


def test_new_blocks_that_extend_the_checkpoint_link() -> None:
    cp = BlockRef(9, "a9", "a8", 1_009)
    new = chain(10, 3)
    assert link(cp, new) == [NewBlock(b) for b in new]


def test_a_new_block_whose_parent_is_not_the_checkpoint_breaks_the_link() -> None:
    cp = BlockRef(9, "a9", "a8", 1_009)
    assert link(cp, chain(10, 3, fork="b")) is None


def test_headers_mixed_from_two_branches_break_the_link() -> None:
    cp = BlockRef(9, "a9", "a8", 1_009)
    mixed = [*chain(10, 2), *chain(12, 1, fork="b")]
    assert link(cp, mixed) is None


def test_a_gap_in_heights_breaks_the_link() -> None:
    cp = BlockRef(9, "a9", "a8", 1_009)
    assert link(cp, chain(11, 2)) is None


def test_nothing_indexed_yet_links_to_anything() -> None:
    start = BlockRef(-1, "", "", 0)
    blocks = chain(0, 2, parent="whatever")
    assert link(start, blocks) == [NewBlock(b) for b in blocks]


def test_checkpoint_replaced_at_the_same_height_is_detected() -> None:
    cp = BlockRef(9, "a9", "a8", 1_009)
    assert checkpoint_still_canonical(cp, BlockRef(9, "a9", "a8", 1_009))
    assert not checkpoint_still_canonical(cp, BlockRef(9, "b9", "a8", 1_010))


def test_chain_shorter_than_the_checkpoint_is_a_reorg() -> None:
    assert not checkpoint_still_canonical(BlockRef(9, "a9", "a8", 1_009), None)


def test_common_ancestor_is_the_newest_surviving_stored_block() -> None:
    stored = list(reversed(chain(0, 10)))  # newest first
    canonical: dict[int, str | None] = {n: f"a{n}" for n in range(6)}
    canonical.update({n: f"b{n}" for n in range(6, 10)})
    found = common_ancestor(stored, canonical)
    assert found is not None and found.number == 5


def test_common_ancestor_with_sparse_stored_blocks_is_the_newest_match() -> None:
    stored = [b for b in reversed(chain(0, 10)) if b.number in (9, 7, 3, 1)]
    canonical: dict[int, str | None] = {n: f"a{n}" if n < 5 else f"b{n}" for n in range(10)}
    found = common_ancestor(stored, canonical)
    assert found is not None and found.number == 3


def test_common_ancestor_when_the_chain_got_shorter() -> None:
    stored = list(reversed(chain(0, 10)))
    canonical: dict[int, str | None] = {n: (f"a{n}" if n <= 6 else None) for n in range(10)}
    found = common_ancestor(stored, canonical)
    assert found is not None and found.number == 6


def test_no_stored_block_survived_means_deeper_than_the_window() -> None:
    stored = list(reversed(chain(5, 5)))
    canonical: dict[int, str | None] = {n: f"b{n}" for n in range(5, 10)}
    assert common_ancestor(stored, canonical) is None


def test_blocks_older_than_the_window_are_final() -> None:
    assert finalized(100, 64) == 36
