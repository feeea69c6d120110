#!/usr/bin/env python3
"""Agent factory: a persistent, stateful host for dscode-exthost, in stdlib-only Python 3.9+.

The supervisor starts this once and keeps it running inside the sandbox; every call after that is
one frame each way over an inherited Unix socket, so agents (and whatever they would load: models,
caches) stay in memory between calls instead of paying a `docker exec` and a cold interpreter per call.

It speaks wire protocol version 1 (proto-schema/PROTOCOL.md). Layout of this file:

- codec: framing, strict JSON, envelope validation (pure, no I/O);
- AgentFactory: the state the commands work on;
- Host: the session (handshake, main loop, dispatch to a worker pool, cancellation, shutdown).

Exit codes: 0 after `shutdown` or EOF; 78 on a protocol version mismatch (PROTOCOL.md); 76 (EX_PROTOCOL)
when the byte stream can no longer be trusted (oversize or truncated frame, a bad handshake);
71 (EX_OSERR) when the IPC socket cannot be obtained.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import platform
import selectors
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

PROTOCOL_VERSION = 1
MAX_FRAME = 1024 * 1024
MAX_SAFE_INT = 2**53 - 1
HEADER = 4

# Every accepted request gets a worker of its own at once, so nothing waits in a queue behind a slow
# call; past this many the host answers Busy rather than queueing invisibly.
MAX_IN_FLIGHT = 32

EX_OSERR = 71
EX_PROTOCOL = 76
EX_VERSION_MISMATCH = 78

MESSAGE_TYPES = ("handshake", "request", "response", "notification", "cancel", "heartbeat", "shutdown")
_NULL_ID_TYPES = ("handshake", "notification", "heartbeat", "shutdown")

# (required keys, optional keys) of each payload; anything else is invalid.
_PAYLOAD_KEYS = {
    "handshake": ({"protocolVersion", "extensionId", "pid", "runtime"}, {"runtimeVersion", "config"}),
    "request": ({"method"}, {"params"}),
    "notification": ({"method"}, {"params"}),
    "response": (set(), {"result", "error"}),
    "cancel": (set(), {"reason"}),
    "heartbeat": ({"seq"}, set()),
    "shutdown": ({"graceMs"}, {"reason"}),
}
_HOST_CONFIG_KEYS = ({"extensionPath", "heartbeatIntervalMs", "shutdownGraceMs"}, {"storagePath", "secrets"})
_ERROR_KEYS = ({"code", "message"}, {"data"})


# ----------------------------------------------------------------------------------------------------
# Codec
# ----------------------------------------------------------------------------------------------------


class FrameError(Exception):
    """The byte stream is out of sync (oversize or truncated frame): the connection must end."""


class BadMessage(Exception):
    """A frame that is not a valid message; the stream stays in sync, so the frame is dropped.

    `kind` is the PROTOCOL.md name (invalid_utf8, invalid_json, invalid_message); `request_id` is the
    id to answer InvalidRequest to, when one could be read.
    """

    def __init__(self, kind: str, detail: str, request_id: int | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.request_id = request_id


class _DuplicateKey(ValueError):
    pass


class _Pairs(list):
    """An object decoded as its raw key/value pairs, for reading an id out of a rejected frame."""


def _strict_object(pairs):
    # Python keeps the last of duplicate keys silently; another parser may keep the first. Rejecting
    # them everywhere means the host never acts on a value the supervisor did not mean.
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    # 1e400 parses to inf here, which could never be sent back (allow_nan=False) and which strict
    # parsers (serde_json) reject; treat it as the invalid number it is.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _has_lone_surrogate(root) -> bool:
    # json.loads turns "\ud800" into an unpaired surrogate that has no UTF-8 form, so it could not be
    # echoed back; the body was not representable UTF-8 text. Iterative: input depth is attacker-chosen.
    stack = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            strings = (value,)
        elif isinstance(value, dict):
            strings = value.keys()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
            continue
        else:
            continue
        for s in strings:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _is_uint(value) -> bool:
    # `type(...) is int` because bool is a subclass of int and `true` is not an id.
    return type(value) is int and 0 <= value <= MAX_SAFE_INT


def _check_keys(obj: dict, keys: tuple, where: str) -> None:
    required, optional = keys
    missing = required - obj.keys()
    if missing:
        raise ValueError(f"{where} is missing {', '.join(sorted(missing))}")
    unknown = obj.keys() - required - optional
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}")


def _check_str(obj: dict, key: str, where: str, non_empty: bool = False) -> None:
    if key in obj and (not isinstance(obj[key], str) or (non_empty and not obj[key])):
        raise ValueError(f"{where}.{key} must be a {'non-empty ' if non_empty else ''}string")


def _check_uint(obj: dict, key: str, where: str) -> None:
    if key in obj and not _is_uint(obj[key]):
        raise ValueError(f"{where}.{key} must be an integer in 0..=2^53-1")


def validate_envelope(msg) -> None:
    """Raise ValueError unless `msg` follows the envelope rules of PROTOCOL.md."""
    if not isinstance(msg, dict):
        raise ValueError("the body must be a JSON object")
    _check_keys(msg, ({"id", "type", "payload"}, set()), "envelope")
    kind, msg_id, payload = msg["type"], msg["id"], msg["payload"]
    if kind not in MESSAGE_TYPES:
        raise ValueError(f"unknown type {kind!r}")
    if kind in _NULL_ID_TYPES:
        if msg_id is not None:
            raise ValueError(f"a {kind} must have id null")
    elif not _is_uint(msg_id):
        raise ValueError(f"a {kind} needs an integer id in 0..=2^53-1")
    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    _check_keys(payload, _PAYLOAD_KEYS[kind], f"{kind} payload")

    if kind == "handshake":
        if type(payload["protocolVersion"]) is not int:
            raise ValueError("handshake.protocolVersion must be an integer")
        _check_str(payload, "extensionId", "handshake")
        _check_uint(payload, "pid", "handshake")
        _check_str(payload, "runtime", "handshake")
        _check_str(payload, "runtimeVersion", "handshake")
        if "config" in payload:
            config = payload["config"]
            if not isinstance(config, dict):
                raise ValueError("handshake.config must be an object")
            _check_keys(config, _HOST_CONFIG_KEYS, "handshake.config")
            _check_str(config, "extensionPath", "config")
            _check_uint(config, "heartbeatIntervalMs", "config")
            _check_uint(config, "shutdownGraceMs", "config")
            _check_str(config, "storagePath", "config")
            secrets = config.get("secrets", {})
            if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
                raise ValueError("config.secrets must be an object of strings")
    elif kind in ("request", "notification"):
        _check_str(payload, "method", kind, non_empty=True)
    elif kind == "response":
        if len(payload) != 1:
            raise ValueError("a response has exactly one of result or error")
        if "error" in payload:
            error = payload["error"]
            if not isinstance(error, dict):
                raise ValueError("response.error must be an object")
            _check_keys(error, _ERROR_KEYS, "response.error")
            _check_str(error, "code", "error", non_empty=True)
            _check_str(error, "message", "error")
    elif kind in ("cancel", "shutdown"):
        _check_str(payload, "reason", kind)
        _check_uint(payload, "graceMs", kind)
    elif kind == "heartbeat":
        _check_uint(payload, "seq", kind)


def _readable_request_id(text: str) -> int | None:
    """The id of a rejected frame, if it is unambiguously a request with a valid id."""
    try:
        top = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(top, _Pairs):
        return None
    ids = [value for key, value in top if key == "id"]
    types = [value for key, value in top if key == "type"]
    if types == ["request"] and len(ids) == 1 and _is_uint(ids[0]):
        return ids[0]
    return None


def decode_body(body: bytes) -> dict:
    """Turn one frame body into a validated message, or raise BadMessage."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        rid = _readable_request_id(body.decode("utf-8", errors="replace"))
        raise BadMessage("invalid_utf8", str(e), rid) from None
    try:
        msg = json.loads(
            text,
            object_pairs_hook=_strict_object,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except _DuplicateKey as e:
        raise BadMessage("invalid_message", str(e), _readable_request_id(text)) from None
    except (ValueError, RecursionError) as e:
        # Only the lenient parse below can still succeed (NaN, 1e400); truly broken JSON has no id.
        raise BadMessage("invalid_json", str(e) or type(e).__name__, _readable_request_id(text)) from None
    if "\\u" in text and _has_lone_surrogate(msg):
        raise BadMessage("invalid_json", "unpaired UTF-16 surrogate escape", _readable_request_id(text))
    try:
        validate_envelope(msg)
    except ValueError as e:
        raise BadMessage("invalid_message", str(e), _readable_request_id(text)) from None
    return msg


def encode_frame(msg: dict) -> bytes:
    """Header plus body; ValueError/TypeError if the message cannot be sent as-is."""
    body = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return len(body).to_bytes(HEADER, "big") + body


class FrameReader:
    """Splits a byte stream into frame bodies; never buffers more than one frame plus one read."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def mid_frame(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list:
        self._buf += data
        bodies = []
        while len(self._buf) >= HEADER:
            size = int.from_bytes(self._buf[:HEADER], "big")
            # Checked as soon as the header is complete, before waiting for (or keeping) a body.
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
            if len(self._buf) < HEADER + size:
                break
            bodies.append(bytes(self._buf[HEADER : HEADER + size]))
            del self._buf[: HEADER + size]
        return bodies


# ----------------------------------------------------------------------------------------------------
# The state: an agent factory
# ----------------------------------------------------------------------------------------------------


class RpcError(Exception):
    """An error response `{code, message, data?}` with a PROTOCOL.md code."""

    def __init__(self, code: str, message: str, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_payload(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"error": error}


class AgentNotFound(Exception):
    """Raised by command code like any extension exception; reaches the caller as ExtensionError."""


def _invalid(message: str) -> RpcError:
    return RpcError("InvalidParams", message)


def _arity(command: str, args: list, names: tuple) -> None:
    if len(args) != len(names):
        expected = ", ".join(names) if names else "no arguments"
        raise _invalid(f"{command} expects [{expected}], got {len(args)} argument(s)")


def _agent_id(command: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{command}: agent_id must be a non-empty string, got {json.dumps(value)}")
    return value


class Agent:
    # Bounded so a chatty agent cannot grow the host without limit; `turns` still counts every call.
    MAX_HISTORY = 1000

    def __init__(self, agent_id: str, name: str, system_prompt: str | None):
        self.id = agent_id
        self.name = name
        self.system_prompt = system_prompt
        self.turns = 0
        self.history = collections.deque(maxlen=self.MAX_HISTORY)

    def respond(self, text: str) -> dict:
        """A deterministic reply that shows the agent remembers earlier turns (no model, no network)."""
        previous = next((m["content"] for m in reversed(self.history) if m["role"] == "user"), None)
        self.turns += 1
        reply = f"[{self.name}] turn {self.turns}: you said {json.dumps(text, ensure_ascii=False)}"
        if previous is not None:
            reply += f"; before that, {json.dumps(previous, ensure_ascii=False)}"
        self.history.append({"role": "user", "content": text})
        self.history.append({"role": "agent", "content": reply})
        return {"agent_id": self.id, "turn": self.turns, "reply": reply}


class AgentFactory:
    """Agents kept in memory across calls. Commands run on worker threads, hence the lock."""

    MAX_SLOW_MS = 10 * 60 * 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: dict = {}
        self._next_id = 1
        self._calls = 0
        self._started = time.monotonic()
        # Secrets from the handshake; used by the factory, never returned or logged.
        self.secrets: dict = {}

    def commands(self) -> dict:
        """Command id -> handler(args, cancelled: threading.Event)."""
        return {
            "agents.create": self.create,
            "agents.call": self.call,
            "agents.list": self.list,
            "agents.delete": self.delete,
            "agents.slow": self.slow,
            "factory.stats": self.stats,
            "factory.secretDigests": self.secret_digests,
        }

    def create(self, args: list, cancelled: threading.Event) -> dict:
        _arity("agents.create", args, ("{name, system_prompt?}",))
        spec = args[0]
        if not isinstance(spec, dict):
            raise _invalid("agents.create: the argument must be an object {name, system_prompt?}")
        unknown = spec.keys() - {"name", "system_prompt"}
        if unknown:
            raise _invalid(f"agents.create: unknown field(s) {', '.join(sorted(unknown))}")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("agents.create: name must be a non-empty string")
        prompt = spec.get("system_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise _invalid("agents.create: system_prompt must be a string when given")
        with self._lock:
            agent = Agent(f"agent-{self._next_id}", name, prompt)
            self._next_id += 1
            if prompt is not None:
                agent.history.append({"role": "system", "content": prompt})
            self._agents[agent.id] = agent
        return {"id": agent.id, "name": agent.name}

    def call(self, args: list, cancelled: threading.Event) -> dict:
        _arity("agents.call", args, ("agent_id", "input"))
        agent_id = _agent_id("agents.call", args[0])
        if not isinstance(args[1], str):
            raise _invalid(f"agents.call: input must be a string, got {json.dumps(args[1])}")
        with self._lock:
            agent = self._get(agent_id)
            self._calls += 1
            return agent.respond(args[1])

    def list(self, args: list, cancelled: threading.Event) -> list:
        _arity("agents.list", args, ())
        with self._lock:
            return [{"id": a.id, "name": a.name, "turns": a.turns} for a in self._agents.values()]

    def delete(self, args: list, cancelled: threading.Event) -> bool:
        _arity("agents.delete", args, ("agent_id",))
        agent_id = _agent_id("agents.delete", args[0])
        with self._lock:
            self._get(agent_id)
            del self._agents[agent_id]
        return True

    def slow(self, args: list, cancelled: threading.Event) -> str:
        _arity("agents.slow", args, ("ms",))
        ms = args[0]
        if type(ms) is not int or not 0 <= ms <= self.MAX_SLOW_MS:
            raise _invalid(f"agents.slow: ms must be an integer in 0..={self.MAX_SLOW_MS}")
        # Stands in for long model work: it waits on the cancel flag instead of sleeping, so a
        # `cancel` ends it at once rather than after the full delay.
        if cancelled.wait(ms / 1000):
            raise RpcError("Cancelled", "agents.slow was cancelled")
        return "done"

    def stats(self, args: list, cancelled: threading.Event) -> dict:
        _arity("factory.stats", args, ())
        with self._lock:
            return {
                "agents": len(self._agents),
                "calls": self._calls,
                "uptime_s": round(time.monotonic() - self._started, 3),
            }

    def secret_digests(self, args: list, cancelled: threading.Event) -> dict:
        """SHA-256 of each secret received at handshake: proves delivery without revealing it."""
        _arity("factory.secretDigests", args, ())
        return {name: hashlib.sha256(value.encode()).hexdigest() for name, value in self.secrets.items()}

    def close(self) -> None:
        """deactivate(): release what activation built (here, just the agents)."""
        with self._lock:
            self._agents.clear()

    def _get(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AgentNotFound(f"no agent with id {agent_id!r}")
        return agent


# ----------------------------------------------------------------------------------------------------
# The session
# ----------------------------------------------------------------------------------------------------


def _die(code: int, message: str):
    sys.stderr.write(f"agent-factory: {message}\n")
    sys.stderr.flush()
    # os._exit, not sys.exit: worker threads may be stuck in handler code, and the interpreter would
    # join them at exit; "exits at once" must hold even then.
    os._exit(code)


def connect() -> socket.socket:
    """The IPC socket: DSCODE_IPC_PATH if set, else the inherited fd DSCODE_IPC_FD (default 3)."""
    path = os.environ.get("DSCODE_IPC_PATH")
    try:
        if path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        else:
            sock = socket.socket(fileno=int(os.environ.get("DSCODE_IPC_FD", "3")))
    except (OSError, ValueError) as e:
        where = f"DSCODE_IPC_PATH={path}" if path else f"DSCODE_IPC_FD={os.environ.get('DSCODE_IPC_FD', '3')}"
        _die(EX_OSERR, f"cannot open the IPC socket ({where}): {e}; run this under dscode-exthost")
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        _die(EX_OSERR, "the IPC fd is not an AF_UNIX stream socket")
    # The supervisor may have created the pair non-blocking (tokio does); O_NONBLOCK travels with the
    # fd, and this host wants plain blocking writes and select()-then-recv reads.
    sock.setblocking(True)
    return sock


class Host:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.factory = AgentFactory()
        self.commands = self.factory.commands()
        self.pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="request")

        # Whole frames from several threads must not interleave on the socket.
        self._write_lock = threading.Lock()
        # Guards the fields below; never held across I/O or handler code.
        self._state_lock = threading.Lock()
        self._in_flight: dict = {}  # request id -> cancel Event
        self._running = 0  # workers that have not yet written their response
        self._activated = False
        self._shutting_down = False

        # Lets a finishing worker wake the main loop so shutdown does not wait for the next timer.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        # Informational only, but it must still encode: undecodable env bytes become U+FFFD.
        self.extension_id = os.fsencode(os.environ.get("DSCODE_EXTENSION_ID", "")).decode("utf-8", "replace")
        self.heartbeat_s = 5.0
        self._heartbeat_seq = 0
        self._early: list = []  # frames that arrived in the same read as the supervisor's handshake

        # Set by `shutdown` (see _begin_shutdown).
        self._cancel_at = self._grace_end = 0.0
        self._cancelled_all = False

    # -- writing --------------------------------------------------------------------------------

    def _send(self, msg: dict) -> None:
        frame = encode_frame(msg)
        try:
            with self._write_lock:
                self.sock.sendall(frame)
        except OSError:
            # The supervisor is gone; the main loop sees EOF and exits, so there is nothing to do here.
            pass

    def _respond(self, request_id: int, payload: dict) -> None:
        try:
            self._send({"id": request_id, "type": "response", "payload": payload})
        except (ValueError, TypeError, RecursionError) as e:
            # The result itself cannot go on the wire (too large, NaN, not JSON); the caller still
            # deserves an answer rather than a timeout.
            error = RpcError("Internal", f"the result could not be sent: {e}")
            self._send({"id": request_id, "type": "response", "payload": error.to_payload()})

    def _notify(self, method: str, params) -> None:
        try:
            self._send({"id": None, "type": "notification", "payload": {"method": method, "params": params}})
        except (ValueError, TypeError):
            pass  # a diagnostic that cannot be encoded is not worth failing the caller for

    def _log(self, level: str, message: str) -> None:
        self._notify("log", {"level": level, "message": message})

    # -- session --------------------------------------------------------------------------------

    def handshake(self) -> None:
        self._send(
            {
                "id": None,
                "type": "handshake",
                "payload": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "extensionId": self.extension_id,
                    "pid": os.getpid(),
                    "runtime": "python",
                    "runtimeVersion": platform.python_version(),
                },
            }
        )
        body = self._read_first_frame()
        # The version is checked before the strict v1 rules: a v2 supervisor may well send a handshake
        # that v1 validation rejects, and that must read as a version mismatch, not a malformed frame.
        version = _handshake_version(body)
        if version is not None and version != PROTOCOL_VERSION:
            _die(EX_VERSION_MISMATCH, f"supervisor speaks protocol {version!r}, this host speaks {PROTOCOL_VERSION}")
        try:
            msg = decode_body(body)
        except BadMessage as e:
            _die(EX_PROTOCOL, f"bad handshake from the supervisor: {e}")
        if msg["type"] != "handshake":
            _die(EX_PROTOCOL, f"expected the supervisor's handshake, got a {msg['type']}")
        payload = msg["payload"]
        self.extension_id = payload["extensionId"]  # the supervisor's is authoritative
        config = payload.get("config") or {}
        interval_ms = config.get("heartbeatIntervalMs", 5000)
        if interval_ms <= 0:
            _die(EX_PROTOCOL, "config.heartbeatIntervalMs must be positive")
        self.heartbeat_s = interval_ms / 1000
        # Model API keys and the like arrive here, never through the environment or argv.
        self.factory.secrets = dict(config.get("secrets", {}))

    def _read_first_frame(self) -> bytes:
        while True:
            data = self._recv()
            try:
                bodies = self.reader.feed(data)
            except FrameError as e:
                _die(EX_PROTOCOL, str(e))
            if bodies:
                # The supervisor may send extension/activate right behind its handshake, in the
                # same read; those frames belong to the main loop.
                self._early = bodies[1:]
                return bodies[0]

    def _recv(self) -> bytes:
        try:
            data = self.sock.recv(64 * 1024)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            if self.reader.mid_frame:
                _die(EX_PROTOCOL, "the stream ended inside a frame")
            os._exit(0)  # EOF: the supervisor is gone or done with us; exit at once
        return data

    def serve(self) -> None:
        """The main loop: reads frames, dispatches requests to workers, and sends heartbeats.

        Heartbeats come from this loop, not from a timer thread, so they stop when this loop stops
        reading the socket; a slow handler only occupies its own worker and does not count as a hang.
        """
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "sock")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        for body in self._early:
            self._on_frame(body)
        next_heartbeat = time.monotonic() + self.heartbeat_s

        while True:
            wake_at = next_heartbeat
            if self._shutting_down:
                wake_at = min(wake_at, self._grace_end if self._cancelled_all else self._cancel_at)
            for key, _ in selector.select(max(0.0, wake_at - time.monotonic())):
                if key.data == "wake":
                    self._drain_wake()
                    continue
                try:
                    bodies = self.reader.feed(self._recv())
                except FrameError as e:
                    _die(EX_PROTOCOL, str(e))
                for body in bodies:
                    self._on_frame(body)

            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat_seq += 1
                self._send({"id": None, "type": "heartbeat", "payload": {"seq": self._heartbeat_seq}})
                # After a stall, resume the rhythm instead of sending a burst of catch-up beats.
                next_heartbeat = max(next_heartbeat + self.heartbeat_s, now)
            if self._shutting_down:
                self._advance_shutdown(now)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- receiving ------------------------------------------------------------------------------

    def _on_frame(self, body: bytes) -> None:
        try:
            msg = decode_body(body)
        except BadMessage as e:
            self._log("warn", f"dropped an invalid frame ({e})")
            if e.request_id is not None:
                self._respond(e.request_id, RpcError("InvalidRequest", str(e)).to_payload())
            return

        kind, msg_id, payload = msg["type"], msg["id"], msg["payload"]
        if kind == "request":
            self._on_request(msg_id, payload["method"], payload.get("params"))
        elif kind == "cancel":
            with self._state_lock:
                cancelled = self._in_flight.get(msg_id)
            # A cancel that crosses its response on the wire finds nothing here; that is normal.
            if cancelled is not None:
                cancelled.set()
        elif kind == "shutdown":
            self._begin_shutdown(payload["graceMs"])
        elif kind == "response":
            # This host never sends requests, so every response answers an id it never issued.
            self._log("warn", f"dropped a response to id {msg_id}, which this host never issued")
        elif kind == "handshake":
            self._log("warn", "dropped a second handshake")
        # Notifications and the supervisor's own heartbeats need nothing from this host.

    def _on_request(self, request_id: int, method: str, params) -> None:
        refusal = None
        with self._state_lock:
            if request_id in self._in_flight:
                refusal = RpcError("InvalidRequest", f"request id {request_id} is already in flight")
            elif self._shutting_down:
                refusal = RpcError("ShuttingDown", "the host is shutting down")
            elif len(self._in_flight) >= MAX_IN_FLIGHT:
                refusal = RpcError("Busy", f"{MAX_IN_FLIGHT} requests are already in flight; retry later")
            else:
                cancelled = threading.Event()
                self._in_flight[request_id] = cancelled
                self._running += 1
        if refusal is not None:
            self._respond(request_id, refusal.to_payload())
            return
        self.pool.submit(self._serve_request, request_id, method, params, cancelled)

    def _serve_request(self, request_id: int, method: str, params, cancelled: threading.Event) -> None:
        try:
            if cancelled.is_set():
                raise RpcError("Cancelled", "cancelled before it started")
            reply = {"result": self._dispatch(method, params, cancelled)}
        except RpcError as e:
            reply = e.to_payload()
        except Exception as e:  # extension code threw: report it, keep serving
            data = {"name": type(e).__name__, "stack": traceback.format_exc()}
            reply = RpcError("ExtensionError", str(e) or type(e).__name__, data).to_payload()
        # Forget the id before answering: the supervisor may reuse it the moment it reads the
        # response, and that new request must not be refused as a duplicate.
        with self._state_lock:
            del self._in_flight[request_id]
        try:
            self._respond(request_id, reply)
        finally:
            with self._state_lock:
                self._running -= 1
                wake = self._shutting_down
            if wake:
                try:
                    os.write(self._wake_w, b"\0")
                except BlockingIOError:
                    pass  # the pipe is already full of wake-ups

    def _dispatch(self, method: str, params, cancelled: threading.Event):
        if method == "host/echo":
            return params
        if method == "extension/activate":
            if params is not None and not isinstance(params, dict):
                raise _invalid("extension/activate takes {} as params")
            with self._state_lock:
                self._activated = True
            return {"commands": list(self.commands)}
        if method == "command/execute":
            with self._state_lock:
                activated = self._activated
            if not activated:
                raise RpcError("InvalidRequest", "command/execute before extension/activate succeeded")
            if not isinstance(params, dict) or params.keys() != {"command", "args"}:
                raise _invalid('command/execute takes {"command": str, "args": [any]}')
            command, args = params["command"], params["args"]
            if not isinstance(command, str) or not isinstance(args, list):
                raise _invalid('command/execute takes {"command": str, "args": [any]}')
            handler = self.commands.get(command)
            if handler is None:
                raise RpcError("CommandNotFound", f"no command {command!r}; this host has {', '.join(self.commands)}")
            return handler(args, cancelled)
        raise RpcError("MethodNotFound", f"no handler for method {method!r}")

    # -- shutdown -------------------------------------------------------------------------------

    def _begin_shutdown(self, grace_ms: int) -> None:
        with self._state_lock:
            if self._shutting_down:
                return
            self._shutting_down = True
        # In-flight work gets the first half of the grace period to finish on its own and the second
        # half to honour a cancel, so its responses are written before the process goes away.
        now = time.monotonic()
        self._cancel_at = now + grace_ms / 2000
        self._grace_end = now + grace_ms / 1000

    def _advance_shutdown(self, now: float) -> None:
        with self._state_lock:
            running = self._running
            pending = list(self._in_flight.values())
        if running == 0 or now >= self._grace_end:
            self.factory.close()
            sys.stderr.flush()
            os._exit(0)
        if now >= self._cancel_at and not self._cancelled_all:
            self._cancelled_all = True
            for cancelled in pending:
                cancelled.set()


def _handshake_version(body: bytes):
    """protocolVersion of a body that looks like a handshake of any version, else None."""
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(msg, dict) or msg.get("type") != "handshake" or not isinstance(msg.get("payload"), dict):
        return None
    return msg["payload"].get("protocolVersion")


def main() -> None:
    host = Host(connect())

    def report_uncaught(args):
        # A bug outside request handling (those become ExtensionError responses) is still worth
        # surfacing to the supervisor, not only to a stderr nobody may read.
        stack = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        sys.stderr.write(stack)
        host._notify("host/error", {"kind": "uncaughtException", "message": str(args.exc_value), "stack": stack})

    threading.excepthook = report_uncaught
    host.handshake()
    host.serve()


if __name__ == "__main__":
    main()
