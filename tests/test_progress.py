"""The one progress bar: off, tqdm, or a caller's callable receiving increments."""
from __future__ import annotations

from unmask._utils.progress import progress_bar


def test_progress_off_callable_and_tqdm(capsys):
    with progress_bar(False, 10) as bar:
        bar.update(3)
        bar.set_postfix(loss=1.0)
    seen: list[int] = []
    with progress_bar(seen.append, 10) as bar:
        bar.update(3)
        bar.update(7)
    assert seen == [3, 7]
    with progress_bar(True, 4, "work", "step", leave=True) as bar:
        bar.update(4)
    err = capsys.readouterr().err
    assert "work" in err and "4/4" in err


def test_track_counts_every_item_and_closes_when_the_loop_stops_early():
    from unmask._utils.progress import track

    seen: list[int] = []
    assert list(track(["a", "b", "c"], seen.append)) == ["a", "b", "c"] and seen == [1, 1, 1]
    seen.clear()
    for item in track(range(10), seen.append):
        if item == 2:
            break
    assert seen == [1, 1]  # items 0 and 1 were finished; the loop stopped at 2
    assert list(track([], True, "nothing")) == []
