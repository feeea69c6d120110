"""End-to-end tests for host.py: this file plays the supervisor over a real socketpair.

Run from the repository root:

    python3 -m unittest discover -s examples/agent-factory -p 'test_*.py'

Nothing here asserts how long anything takes; timeouts exist only so a broken host fails the test
instead of hanging it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = os.path.join(HERE, "host.py")
MAX_FRAME = 1024 * 1024
TIMEOUT = 15.0
# Long enough that it never finishes during a test: anything that must happen "before the slow call
# ends" is then a question of order, not of timing.
FOREVER_MS = 600_000
COMMANDS = [
    "agents.create",
    "agents.call",
    "agents.list",
    "agents.delete",
    "agents.slow",
    "factory.stats",
    "factory.secretDigests",
]
MESSAGE_TYPES = {"handshake", "request", "response", "notification", "cancel", "heartbeat", "shutdown"}


def frame(msg) -> bytes:
    return raw_frame(json.dumps(msg).encode("utf-8"))


def raw_frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


class Supervisor:
    """A minimal supervisor: spawns the host, reads its frames on a thread, sends ours."""

    def __init__(self, test: unittest.TestCase, ipc_path: str | None = None):
        self.test = test
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, DSCODE_EXTENSION_ID="local.agent-factory")
        if ipc_path is None:
            self.sock, child = socket.socketpair()
            env["DSCODE_IPC_FD"] = str(child.fileno())
            self.proc = subprocess.Popen(
                [sys.executable, HOST], pass_fds=(child.fileno(),), env=env, stderr=self.stderr
            )
            child.close()  # only the host holds that end now, so its exit reads as EOF here
        else:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(ipc_path)
                listener.listen(1)
                listener.settimeout(TIMEOUT)
                env["DSCODE_IPC_PATH"] = ipc_path
                self.proc = subprocess.Popen([sys.executable, HOST], env=env, stderr=self.stderr)
                self.sock, _ = listener.accept()
                self.sock.settimeout(None)
        test.addCleanup(self.close)

        self._cond = threading.Condition()
        self._inbox: list = []
        self._eof = False
        self._bad: list = []  # frames from the host that break the envelope rules
        self._next_id = 0
        threading.Thread(target=self._read_loop, daemon=True).start()

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        self.stderr.close()
        self.test.assertEqual(self._bad, [], "the host sent frames that break the envelope rules")

    def host_stderr(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", errors="replace")

    def _recv_exact(self, n: int) -> bytes | None:
        chunks = []
        while n:
            try:
                chunk = self.sock.recv(n)
            except OSError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self) -> None:
        while True:
            header = self._recv_exact(4)
            body = header and self._recv_exact(int.from_bytes(header, "big"))
            if body is None:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            msg = json.loads(body)
            if not (isinstance(msg, dict) and msg.keys() == {"id", "type", "payload"} and msg["type"] in MESSAGE_TYPES):
                self._bad.append(msg)
            with self._cond:
                self._inbox.append(msg)
                self._cond.notify_all()

    def take(self, predicate, what: str, timeout: float = TIMEOUT) -> dict:
        """Remove and return the first message matching `predicate`, waiting for it if needed."""

        def find():
            for i, msg in enumerate(self._inbox):
                if predicate(msg):
                    return self._inbox.pop(i)
            return None

        with self._cond:
            found = self._cond.wait_for(lambda: find() or self._eof, timeout)
        if not isinstance(found, dict):
            reason = "the host closed the connection" if self._eof else f"nothing within {timeout}s"
            self.test.fail(f"waiting for {what}: {reason}\nhost stderr:\n{self.host_stderr()}")
        return found

    def has_response(self, request_id: int) -> bool:
        with self._cond:
            return any(m["type"] == "response" and m["id"] == request_id for m in self._inbox)

    # -- protocol -------------------------------------------------------------------------------

    def send(self, msg) -> None:
        self.sock.sendall(frame(msg))

    def handshake(self, version: int = 1, heartbeat_ms: int = 60_000, secrets: dict | None = None) -> dict:
        hello = self.take(lambda m: m["type"] == "handshake", "the host's handshake")
        config = {"extensionPath": HERE, "heartbeatIntervalMs": heartbeat_ms, "shutdownGraceMs": 2000}
        if secrets is not None:
            config["secrets"] = secrets
        self.send(
            {
                "id": None,
                "type": "handshake",
                "payload": {
                    "protocolVersion": version,
                    "extensionId": "local.agent-factory",
                    "pid": os.getpid(),
                    "runtime": "dscode-exthost",
                    "config": config,
                },
            }
        )
        return hello

    def start(self, heartbeat_ms: int = 60_000) -> "Supervisor":
        """Handshake and activate: the host is Running afterwards."""
        self.handshake(heartbeat_ms=heartbeat_ms)
        self.test.assertEqual(self.call("extension/activate", {}), {"result": {"commands": COMMANDS}})
        return self

    def request(self, method: str, params=None, request_id: int | None = None) -> int:
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        payload = {"method": method} if params is None else {"method": method, "params": params}
        self.send({"id": request_id, "type": "request", "payload": payload})
        return request_id

    def response(self, request_id: int, timeout: float = TIMEOUT) -> dict:
        msg = self.take(lambda m: m["type"] == "response" and m["id"] == request_id, f"response {request_id}", timeout)
        return msg["payload"]

    def call(self, method: str, params=None) -> dict:
        return self.response(self.request(method, params))

    def execute(self, command: str, *args) -> dict:
        return self.call("command/execute", {"command": command, "args": list(args)})

    def cancel(self, request_id: int) -> None:
        self.send({"id": request_id, "type": "cancel", "payload": {"reason": "test"}})

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.test.fail(f"the host did not exit\nhost stderr:\n{self.host_stderr()}")


def error_code(payload: dict) -> str | None:
    return payload.get("error", {}).get("code")


class SessionTest(unittest.TestCase):
    def test_handshake_then_activate(self):
        sup = Supervisor(self)
        hello = sup.handshake()
        self.assertIsNone(hello["id"])
        self.assertEqual(hello["payload"]["protocolVersion"], 1)
        self.assertEqual(hello["payload"]["extensionId"], "local.agent-factory")
        self.assertEqual(hello["payload"]["pid"], sup.proc.pid)
        self.assertEqual(hello["payload"]["runtime"], "python")
        self.assertIsInstance(hello["payload"]["runtimeVersion"], str)
        self.assertEqual(sup.call("extension/activate", {}), {"result": {"commands": COMMANDS}})

    def test_handshake_secrets_reach_the_factory_and_are_never_echoed(self):
        sup = Supervisor(self)
        value = "sk-test-0123456789abcdef"
        sup.handshake(secrets={"MODEL_API_KEY": value})
        self.assertEqual(sup.call("extension/activate", {}), {"result": {"commands": COMMANDS}})
        reply = sup.execute("factory.secretDigests")
        self.assertEqual(reply, {"result": {"MODEL_API_KEY": hashlib.sha256(value.encode()).hexdigest()}})
        self.assertNotIn(value, json.dumps(reply))

    def test_non_string_secrets_are_a_bad_handshake(self):
        sup = Supervisor(self)
        sup.handshake(secrets={"KEY": 1})
        self.assertNotEqual(sup.proc.wait(timeout=TIMEOUT), 0)

    def test_commands_are_refused_before_activation(self):
        sup = Supervisor(self)
        sup.handshake()
        self.assertEqual(error_code(sup.execute("agents.list")), "InvalidRequest")
        self.assertEqual(sup.call("host/echo", 1), {"result": 1})

    def test_version_mismatch_exits_78(self):
        sup = Supervisor(self)
        sup.handshake(version=2)
        self.assertEqual(sup.wait_exit(), 78)

    def test_anything_but_a_handshake_first_is_fatal(self):
        sup = Supervisor(self)
        sup.take(lambda m: m["type"] == "handshake", "the host's handshake")
        sup.request("host/echo", 1)
        self.assertEqual(sup.wait_exit(), 76)

    def test_connects_to_DSCODE_IPC_PATH(self):
        with tempfile.TemporaryDirectory() as tmp:
            sup = Supervisor(self, ipc_path=os.path.join(tmp, "ipc.sock")).start()
            self.assertEqual(sup.call("host/echo", "via path"), {"result": "via path"})

    def test_heartbeats_arrive_even_while_a_request_is_busy(self):
        sup = Supervisor(self).start(heartbeat_ms=50)
        slow = sup.request("command/execute", {"command": "agents.slow", "args": [FOREVER_MS]})
        seqs = [sup.take(lambda m: m["type"] == "heartbeat", "a heartbeat")["payload"]["seq"] for _ in range(3)]
        self.assertEqual(seqs, sorted(set(seqs)), "heartbeat seq must increase")
        self.assertFalse(sup.has_response(slow))
        sup.cancel(slow)
        self.assertEqual(error_code(sup.response(slow)), "Cancelled")

    def test_shutdown_exits_0(self):
        sup = Supervisor(self).start()
        sup.send({"id": None, "type": "shutdown", "payload": {"graceMs": 2000}})
        self.assertEqual(sup.wait_exit(), 0)

    def test_shutdown_cancels_work_that_outlives_half_the_grace(self):
        sup = Supervisor(self).start()
        slow = sup.request("command/execute", {"command": "agents.slow", "args": [FOREVER_MS]})
        # In one write, so the host reads both before its grace period can run out.
        sup.sock.sendall(
            frame({"id": None, "type": "shutdown", "payload": {"graceMs": 1000, "reason": "test"}})
            + frame({"id": 99, "type": "request", "payload": {"method": "host/echo", "params": 1}})
        )
        self.assertEqual(error_code(sup.response(99)), "ShuttingDown")
        self.assertEqual(error_code(sup.response(slow)), "Cancelled")
        self.assertEqual(sup.wait_exit(), 0)

    def test_eof_exits_0(self):
        sup = Supervisor(self).start()
        sup.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(sup.wait_exit(), 0)


class AgentFactoryTest(unittest.TestCase):
    def setUp(self):
        self.sup = Supervisor(self).start()

    def test_agents_keep_state_across_calls(self):
        sup = self.sup
        created = sup.execute("agents.create", {"name": "planner", "system_prompt": "plan things"})["result"]
        self.assertEqual(created, {"id": "agent-1", "name": "planner"})
        other = sup.execute("agents.create", {"name": "critic"})["result"]

        first = sup.execute("agents.call", "agent-1", "hello")["result"]
        self.assertEqual(first, {"agent_id": "agent-1", "turn": 1, "reply": '[planner] turn 1: you said "hello"'})
        second = sup.execute("agents.call", "agent-1", "again")["result"]
        self.assertEqual(second["turn"], 2)
        self.assertEqual(second["reply"], '[planner] turn 2: you said "again"; before that, "hello"')

        listed = sup.execute("agents.list")["result"]
        self.assertEqual(listed, [{"id": "agent-1", "name": "planner", "turns": 2}, {"id": other["id"], "name": "critic", "turns": 0}])
        stats = sup.execute("factory.stats")["result"]
        self.assertEqual((stats["agents"], stats["calls"]), (2, 2))
        self.assertGreaterEqual(stats["uptime_s"], 0)

        self.assertEqual(sup.execute("agents.delete", "agent-1"), {"result": True})
        self.assertEqual(sup.execute("agents.list")["result"], [{"id": other["id"], "name": "critic", "turns": 0}])
        gone = sup.execute("agents.call", "agent-1", "still there?")
        self.assertEqual(error_code(gone), "ExtensionError")
        self.assertEqual(gone["error"]["data"]["name"], "AgentNotFound")

    def test_bad_arguments_are_InvalidParams(self):
        cases = [
            ("agents.create", []),
            ("agents.create", ["planner"]),
            ("agents.create", [{"name": ""}]),
            ("agents.create", [{"name": "x", "model": "gpt"}]),
            ("agents.call", ["agent-1"]),
            ("agents.call", [1, "hi"]),
            ("agents.call", ["agent-1", {"not": "a string"}]),
            ("agents.list", ["extra"]),
            ("agents.slow", ["10"]),
            ("agents.slow", [True]),
            ("agents.slow", [-1]),
        ]
        for command, args in cases:
            with self.subTest(command=command, args=args):
                reply = self.sup.execute(command, *args)
                self.assertEqual(error_code(reply), "InvalidParams", reply)
                self.assertIn(command, reply["error"]["message"])
        for params in [None, [], {"command": "agents.list"}, {"command": 1, "args": []}, {"command": "agents.list", "args": {}}]:
            with self.subTest(params=params):
                self.assertEqual(error_code(self.sup.call("command/execute", params)), "InvalidParams")

    def test_unknown_command_and_method(self):
        self.assertEqual(error_code(self.sup.execute("agents.teleport")), "CommandNotFound")
        self.assertEqual(error_code(self.sup.call("workspace/teleport", {})), "MethodNotFound")

    def test_echo_returns_params_unchanged(self):
        for value in [None, 0, -1.5, "héllo ✓ 🙂", [1, [2, [3]]], {"a": {"b": None}, "": True}]:
            with self.subTest(value=value):
                self.assertEqual(self.sup.call("host/echo", value), {"result": value})

    def test_a_frame_of_exactly_the_maximum_size_is_accepted(self):
        head = b'{"id":77,"type":"request","payload":{"method":"host/echo","params":"'
        tail = b'"}}'
        body = head + b"x" * (MAX_FRAME - len(head) - len(tail)) + tail
        self.sup.sock.sendall(raw_frame(body))
        self.assertEqual(len(self.sup.response(77)["result"]), MAX_FRAME - len(head) - len(tail))

    def test_slow_finishes_with_done(self):
        self.assertEqual(self.sup.execute("agents.slow", 10), {"result": "done"})


class ConcurrencyTest(unittest.TestCase):
    def setUp(self):
        self.sup = Supervisor(self).start()

    def slow(self, request_id: int | None = None) -> int:
        return self.sup.request("command/execute", {"command": "agents.slow", "args": [FOREVER_MS]}, request_id)

    def test_fast_requests_are_answered_while_a_slow_one_runs(self):
        sup = self.sup
        slow = self.slow()
        echo = sup.request("host/echo", "ping")
        create = sup.request("command/execute", {"command": "agents.create", "args": [{"name": "quick"}]})
        self.assertEqual(sup.response(echo), {"result": "ping"})
        self.assertEqual(sup.response(create)["result"]["name"], "quick")
        self.assertFalse(sup.has_response(slow), "the slow call must still be running")
        sup.cancel(slow)
        self.assertEqual(error_code(sup.response(slow)), "Cancelled")

    def test_cancel_ends_only_the_cancelled_request(self):
        sup = self.sup
        doomed, survivor = self.slow(), sup.request("command/execute", {"command": "agents.slow", "args": [200]})
        sup.cancel(doomed)
        sup.cancel(12345)  # never issued: ignored
        reply = sup.response(doomed)
        self.assertEqual(error_code(reply), "Cancelled")
        self.assertEqual(sup.response(survivor), {"result": "done"})

    def test_a_duplicate_in_flight_id_is_InvalidRequest(self):
        sup = self.sup
        slow = self.slow()
        sup.request("host/echo", 1, request_id=slow)
        self.assertEqual(error_code(sup.response(slow)), "InvalidRequest")
        sup.cancel(slow)
        self.assertEqual(error_code(sup.response(slow)), "Cancelled")
        # Answered means forgotten: the id is free again.
        self.assertEqual(sup.response(sup.request("host/echo", 3, request_id=slow)), {"result": 3})

    def test_too_many_in_flight_is_Busy_not_a_queue(self):
        sup = self.sup
        running = [self.slow() for _ in range(32)]
        self.assertEqual(error_code(sup.call("host/echo", "one too many")), "Busy")
        for request_id in running:
            sup.cancel(request_id)
        for request_id in running:
            self.assertEqual(error_code(sup.response(request_id)), "Cancelled")
        self.assertEqual(sup.call("host/echo", "room again"), {"result": "room again"})


class BadInputTest(unittest.TestCase):
    def setUp(self):
        self.sup = Supervisor(self).start()

    def test_oversize_header_ends_the_host_without_a_body(self):
        self.sup.sock.sendall((MAX_FRAME + 1).to_bytes(4, "big"))  # and no body: must not wait for it
        self.assertNotEqual(self.sup.wait_exit(), 0)

    def test_a_truncated_frame_ends_the_host(self):
        self.sup.sock.sendall((10).to_bytes(4, "big") + b'{"id"')
        self.sup.sock.shutdown(socket.SHUT_WR)
        self.assertNotEqual(self.sup.wait_exit(), 0)

    def test_bad_messages_are_dropped_and_the_stream_stays_in_sync(self):
        sup = self.sup
        answered = {  # frames whose request id can still be read: answered InvalidRequest
            5: b'{"id":5,"type":"request","payload":{"method":"host/echo","params":"\xff"}}',
            6: b'{"id":6,"type":"request","payload":{"method":"host/echo"},"extra":1}',
            7: b'{"id":7,"type":"request","payload":{"method":"host/echo","method":"x"}}',
            8: b'{"id":8,"type":"request","payload":{"method":"host/echo","params":"\\ud800"}}',
            9: b'{"id":9,"type":"request","payload":{"method":""}}',
            10: b'{"id":10,"type":"request","payload":{"method":"host/echo","params":1e400}}',
            14: b'{"id":14,"type":"request","payload":{"method":"host/echo","params":NaN}}',
        }
        dropped = [  # no readable request id: dropped silently
            b"",
            b"not json",
            b"[1,2,3]",
            b'{"id":9007199254740992,"type":"request","payload":{"method":"host/echo"}}',
            b'{"id":true,"type":"request","payload":{"method":"host/echo"}}',
            b'{"id":11,"id":12,"type":"request","payload":{"method":"host/echo"}}',
            b'{"id":13,"type":"rumour","payload":{}}',
            b'{"id":99,"type":"response","payload":{"result":1}}',
        ]
        sup.sock.sendall(b"".join(raw_frame(body) for body in [*answered.values(), *dropped]))
        self.assertEqual(sup.call("host/echo", "still in sync"), {"result": "still in sync"})
        # Rejections are answered from the read loop, in order, before the echo could be served.
        for request_id in answered:
            with self.subTest(request_id=request_id):
                self.assertTrue(sup.has_response(request_id))
                self.assertEqual(error_code(sup.response(request_id)), "InvalidRequest")
        with sup._cond:
            stray = [m for m in sup._inbox if m["type"] == "response"]
        self.assertEqual(stray, [])
        self.assertIsNone(sup.proc.poll())


if __name__ == "__main__":
    unittest.main()
