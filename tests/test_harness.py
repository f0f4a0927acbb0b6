"""The harness's record format and tally (``safelog._harness``), which every
fork test and the demo count with: if they miss a defect, so do the tests."""

from __future__ import annotations

from safelog._harness import RECORD, Tally, count_records, record_line


def test_count_records_counts_a_spliced_line_as_torn_and_its_records_as_lost() -> None:
    """A line made of the head of one record and the tail of another has a
    record's shape, but is torn, and neither record is counted."""
    head = record_line("p0:1")
    tail = record_line("c4:2")
    spliced = head[: head.index("|")] + tail[tail.index("|") :]
    assert RECORD.fullmatch(spliced)
    log = f"{record_line('p0:0')}\n{spliced}\n{record_line('p0:2')}\n"

    tally = count_records(log, ["p0:0", "p0:1", "p0:2", "c4:2"])

    assert Tally(lost=2, duplicated=0, torn=1, other=[]) == tally
    assert ["torn " + repr(spliced), "lost c4:2", "lost p0:1"] == tally.sample


def test_count_records_finds_lost_duplicated_torn_unexpected_and_other() -> None:
    """A missing, a doubled, a cut and an unexpected record, and a stray line,
    are each counted once; so is a record with no line end after it."""
    first, second = record_line("p0:0"), record_line("p0:1")
    log = "\n".join(
        [
            first,
            second,
            second,
            first[:20] + second,
            record_line("c9:0"),
            "Traceback (most recent call last):",
            "",
            record_line("p0:2"),
        ]
    )

    tally = count_records(log, ["p0:0", "p0:1", "p0:2", "p0:3"])

    expected = Tally(
        lost=2,  # p0:2 has no line end, and p0:3 is not there at all
        duplicated=1,
        torn=2,
        other=["Traceback (most recent call last):", ""],
        unexpected=1,
    )
    assert expected == tally
    assert not tally.clean


def test_a_log_of_whole_records_is_clean() -> None:
    """Every expected record once, each on its own line, is a clean tally."""
    ids = [f"p{thread}:{seq}" for thread in range(3) for seq in range(200)]
    log = "".join(record_line(record_id) + "\n" for record_id in reversed(ids))

    tally = count_records(log, ids)

    assert Tally(lost=0, duplicated=0, torn=0, other=[]) == tally
    assert tally.clean


def test_a_line_end_written_twice_is_not_clean() -> None:
    """A blank line is a line end written twice (a buffer holding only the
    last record's line end, flushed by parent and child): not clean."""
    log = record_line("p0:0") + "\n\n" + record_line("p0:1") + "\n"

    tally = count_records(log, ["p0:0", "p0:1"])

    assert [""] == tally.other
    assert not tally.clean


def test_record_lines_vary_in_length_and_hold_two_byte_characters() -> None:
    """Records end at every offset of a buffer and can be cut inside a
    character, so the tally sees those tears too."""
    lines = [record_line(f"p0:{seq}") for seq in range(500)]

    assert 100 < len({len(line.encode()) for line in lines})
    assert any("é" in line for line in lines)
    assert all(RECORD.fullmatch(line) and "\n" not in line for line in lines)
