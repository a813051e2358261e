"""The IPC mailbox between real processes: what a closing process had queued still arrives."""

from __future__ import annotations

import asyncio
import os

from pyswoole.process.ipc import Mailbox

MESSAGES = 40  # four times what an AF_UNIX datagram receiver queues by default (max_dgram_qlen 10)


def test_close_sends_what_a_slow_receiver_had_no_room_for():
    namespace = f"test-mailbox-{os.getpid()}"
    receiver = Mailbox(namespace)
    report_read, report_write = os.pipe()
    child = os.fork()
    if child == 0:  # the sender: queues more than the receiver holds, then closes at once
        try:

            async def send_then_close() -> None:
                mailbox = Mailbox(namespace)
                mailbox.attach(asyncio.get_running_loop())
                for number in range(MESSAGES):
                    mailbox.send(os.getppid(), 7, number.to_bytes(4, "big"))
                queued = sum(len(peer.outbox) for peer in mailbox._peers.values())
                os.write(report_write, queued.to_bytes(4, "big"))
                mailbox.close()

            asyncio.run(send_then_close())
        finally:
            os._exit(0)
    try:
        queued = int.from_bytes(os.read(report_read, 4), "big")
        assert queued > 0, "the receiver's queue never filled: the case is not exercised"
        numbers = []
        for _ in range(MESSAGES):
            message = receiver.receive(timeout=10)
            assert message is not None, f"only {len(numbers)} of {MESSAGES} messages arrived"
            kind, sender, payload, _ = message
            assert (kind, sender) == (7, child)
            numbers.append(int.from_bytes(payload, "big"))
        assert numbers == list(range(MESSAGES))
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        receiver.close()
        os.close(report_read)
        os.close(report_write)
        try:
            os.kill(child, 9)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
