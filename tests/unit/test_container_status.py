"""ContainerStatus: per state, what a verb may do and which statuses may follow (youki's
`ContainerStatus` with `can_start`/`can_kill`/`can_delete` is the model)."""

from __future__ import annotations

import pytest

from berth.containers.status import ContainerStatus as S
from berth.errors import Conflict

ALL = set(S)


def _next(status: S) -> set[S]:
    return {s for s in S if status.can_become(s)}


def test_the_statuses_are_dockers() -> None:
    assert [s.value for s in S] == [
        "created",
        "running",
        "paused",
        "restarting",
        "removing",
        "exited",
        "dead",
    ]
    assert S("exited") is S.EXITED


def test_created() -> None:
    s = S.CREATED
    assert s.can_start() and s.can_remove() and s.can_attach()
    assert not (
        s.can_kill()
        or s.can_stop()
        or s.can_pause()
        or s.can_unpause()
        or s.can_exec()
        or s.is_running
    )
    # a start that fails before the process runs leaves it created (its error recorded)
    assert _next(s) == {S.RUNNING, S.REMOVING, S.EXITED, S.DEAD}


def test_running() -> None:
    s = S.RUNNING
    assert s.is_running and s.can_kill() and s.can_stop() and s.can_pause() and s.can_exec()
    assert s.can_attach()
    assert not (s.can_start() or s.can_unpause())
    assert not s.can_remove() and s.can_remove(force=True)
    # it exits first: `restarting` and `removing` only come after `exited`
    assert _next(s) == {S.PAUSED, S.EXITED, S.DEAD}


def test_paused() -> None:
    s = S.PAUSED
    assert s.is_running and s.can_kill() and s.can_stop() and s.can_unpause()
    assert not (s.can_start() or s.can_pause() or s.can_exec())
    assert not s.can_remove() and s.can_remove(force=True)
    assert _next(s) == {S.RUNNING, S.EXITED, S.DEAD}


def test_restarting() -> None:
    s = S.RESTARTING
    assert s.can_start()  # by hand: the pending restart is cancelled
    assert not (
        s.is_running
        or s.can_kill()
        or s.can_stop()
        or s.can_pause()
        or s.can_exec()
        or s.can_attach()
    )
    assert not s.can_remove() and s.can_remove(force=True)
    assert _next(s) == {S.RUNNING, S.EXITED, S.REMOVING, S.DEAD}


def test_removing() -> None:
    s = S.REMOVING
    assert not (
        s.can_start()
        or s.can_kill()
        or s.can_stop()
        or s.can_pause()
        or s.can_exec()
        or s.is_running
    )
    assert not s.can_remove() and not s.can_remove(force=True)
    assert _next(s) == {S.DEAD}


def test_exited() -> None:
    s = S.EXITED
    assert s.can_start() and s.can_remove() and s.can_attach()
    assert not (s.can_kill() or s.can_stop() or s.can_pause() or s.can_exec() or s.is_running)
    assert _next(s) == {S.RUNNING, S.RESTARTING, S.REMOVING, S.DEAD}


def test_dead() -> None:
    s = S.DEAD
    assert s.can_remove()
    assert not (s.can_start() or s.can_kill() or s.can_pause() or s.is_running)
    assert _next(s) == {S.REMOVING}


@pytest.mark.parametrize("status", sorted(ALL))
def test_no_status_becomes_itself_and_check_names_both(status: S) -> None:
    assert not status.can_become(status)
    with pytest.raises(Conflict, match=f"from {status.value} to {status.value}"):
        status.check(status)
    for other in _next(status):
        assert status.check(other) is other


def test_every_status_is_reachable_from_created() -> None:
    seen, todo = {S.CREATED}, [S.CREATED]
    while todo:
        for n in _next(todo.pop()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    assert seen == ALL
