"""`Attachment.serve`: the one ending of an attach or exec stream (the API's hijacked and
WebSocket streams, the dashboard's consoles)."""

from __future__ import annotations

import asyncio

from berth.containers.channel import Attachment, Fanout


def _attachment(fan: Fanout, closed: list[bool]) -> Attachment:
    async def no_channel() -> None:
        return None

    q = fan.subscribe("t")

    def on_close() -> None:
        closed.append(True)
        fan.unsubscribe(q)

    return Attachment(
        q,
        stdout=True,
        stderr=True,
        channel=no_channel,
        stdin_once=False,
        on_close=on_close,
    )


def test_the_first_way_to_end_ends_the_others_and_closes_the_attachment() -> None:
    async def main() -> None:
        closed: list[bool] = []
        att = _attachment(Fanout(), closed)
        other_cancelled = asyncio.Event()

        async def quick() -> None:
            await asyncio.sleep(0)

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                other_cancelled.set()
                raise

        assert await asyncio.wait_for(att.serve(quick(), forever()), 5) is False
        assert other_cancelled.is_set() and closed == [True]

    asyncio.run(main())


def test_a_client_cut_off_for_taking_no_output_is_said() -> None:
    async def main() -> None:
        closed: list[bool] = []
        att = _attachment(Fanout(), closed)

        async def forever() -> None:
            await asyncio.sleep(3600)

        asyncio.get_running_loop().call_later(0.05, att.queue.cut, 60.0)
        assert await asyncio.wait_for(att.serve(forever(), forever()), 5) is True
        assert closed == [True]

    asyncio.run(main())


def test_cancelled_from_outside_it_still_ends_every_way_and_closes() -> None:
    async def main() -> None:
        closed: list[bool] = []
        att = _attachment(Fanout(), closed)
        ended: list[str] = []

        async def way(name: str) -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                ended.append(name)

        task = asyncio.ensure_future(att.serve(way("out"), way("in")))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert sorted(ended) == ["in", "out"] and closed == [True]

    asyncio.run(main())
