"""The stand-in's HTTP plumbing: one loopback server, fault knobs, request log.

One ``ThreadingHTTPServer`` answers both hubs: paths under ``/api/v1/`` (and
``/_standin/kaggle/``) are Kaggle's, everything else is the Hugging Face Hub's.
The server also accepts absolute-form request targets (``POST http://localhost/api/v1/...``),
which is how it receives kagglesdk's traffic when it is used as the HTTP proxy
(kagglesdk has no variable for a custom API URL; see ``fixtures.py``).
"""

import base64
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.standin_hub import hf as hf_api
from tests.standin_hub import kaggle as kaggle_api
from tests.standin_hub.common import (
    HF_TOKEN,
    KAGGLE_API_TOKEN,
    KAGGLE_KEY,
    KAGGLE_USERNAME,
    Dropped,
    HttpError,
)


@dataclass
class Fault:
    kind: str  # "status", "drop", "delay", "cut" or "short"
    status: int = 500
    after_bytes: int | None = None  # "drop": request bytes read; "cut"/"short": response bytes sent
    seconds: float = 0.0  # for "delay": how long the answer is held
    path: str | None = None  # only requests whose path ends with this (any request if None)


class Faults:
    """Planned failures, consumed one per matching request.

    Operation names: ``hf.create_repo``, ``hf.preupload``, ``hf.commit``, ``hf.resolve`` (HEAD and
    GET of a file), ``hf.file`` (only the GET of a file's bytes), ``hf.info``, ``hf.tree``;
    ``kaggle.<Method>`` for every API method (``kaggle.CreateModelInstance``, ``kaggle.StartBlobUpload``,
    ...), ``kaggle.blob_upload`` (the PUT of bytes to the upload URL) and ``kaggle.file`` (the GET of
    a file or archive the download redirected to). ``cut`` and ``short`` apply to the byte routes
    (``hf.file``, ``hf.resolve``, ``kaggle.file``), ``delay`` to every operation but
    ``kaggle.blob_upload`` (which takes ``fail`` and ``drop``), ``fail`` to all. With
    ``path``, a fault waits for a request of ``op`` whose path ends with it (one file, say).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._plans = {}

    def fail(self, op, times=1, status=500, path=None):
        """Answer the next ``times`` requests of ``op`` with HTTP ``status``."""
        self._add(op, times, Fault("status", status=status, path=path))

    def drop(self, op, times=1, after_bytes=None):
        """Cut the connection during the next ``times`` requests of ``op``, after reading
        ``after_bytes`` of the body (default: half of it)."""
        self._add(op, times, Fault("drop", after_bytes=after_bytes))

    def delay(self, op, times=1, seconds=1.0):
        """Hold the answer to the next ``times`` requests of ``op`` for ``seconds``, then give it
        (to a client that may have stopped waiting)."""
        self._add(op, times, Fault("delay", seconds=seconds))

    def cut(self, op, times=1, after_bytes=0, path=None):
        """Answer the next ``times`` requests of ``op`` announcing the whole body, but cut the
        connection after sending ``after_bytes`` of it: a download cut short."""
        self._add(op, times, Fault("cut", after_bytes=after_bytes, path=path))

    def short(self, op, times=1, after_bytes=0, path=None):
        """Answer the next ``times`` requests of ``op`` with only the first ``after_bytes`` of the
        body, announced as the whole of it (the headers that describe the file are unchanged):
        a truncated file that arrives looking complete."""
        self._add(op, times, Fault("short", after_bytes=after_bytes, path=path))

    def clear(self):
        with self._lock:
            self._plans.clear()

    def pending(self, op):
        with self._lock:
            return len(self._plans.get(op, []))

    def take(self, op, path=""):
        """The next fault planned for a request of ``op`` to ``path``, removed from the plan, or ``None``."""
        with self._lock:
            plan = self._plans.get(op, [])
            for i, fault in enumerate(plan):
                if fault.path is None or path.endswith(fault.path):
                    return plan.pop(i)
            return None

    def _add(self, op, times, fault):
        with self._lock:
            self._plans.setdefault(op, []).extend([fault] * times)


@dataclass
class Request:
    """What a route handler sees of one HTTP request."""

    handler: "_Handler"
    method: str
    path: str
    query: dict
    headers: dict = field(repr=False)
    _body: bytes | None = field(default=None, repr=False)
    _body_fault: Fault | None = field(default=None, repr=False)  # a "cut" or "short" for send_bytes

    @property
    def hub(self):
        return self.handler.server.hub

    def body(self):
        if self._body is None:
            self._body = self.handler.read_body()
        return self._body

    def json(self):
        raw = self.body()
        return json.loads(raw) if raw else {}

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def param(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def basic_or_bearer(self):
        """``("bearer", token)``, ``("basic", (user, key))`` or ``None``."""
        value = self.header("authorization")
        if not value:
            return None
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer":
            return ("bearer", rest.strip())
        if scheme.lower() == "basic":
            try:
                user, _, key = base64.b64decode(rest.strip()).decode().partition(":")
            except ValueError:
                return ("basic", ("", ""))
            return ("basic", (user, key))
        return ("other", value)

    def injected_failure(self, op):
        """Apply the next fault planned for ``op``: a drop cuts the connection here, a delay holds
        the request here, a cut or short answer is left to ``send_bytes``; a failure returns the
        HTTP status the hub should answer with (``None``: no failure)."""
        fault = self.hub.faults.take(op, self.path)
        if fault is None:
            return None
        if fault.kind == "drop":
            self.drop(fault.after_bytes)
        if fault.kind == "delay":
            self.hub.hold(fault.seconds)
            return None
        if fault.kind in ("cut", "short"):
            self._body_fault = fault
            return None
        return fault.status

    def send_bytes(self, status, data, headers):
        """Answer with file bytes, applying a planned ``cut`` or ``short`` fault (see ``Faults``)."""
        fault = self._body_fault
        if fault is None or self.method == "HEAD":
            self.handler.send(status, data, headers)
        elif fault.kind == "short":
            self.handler.send(status, data[: fault.after_bytes], headers)
        else:
            self.handler.send(status, data, headers, cut_after=fault.after_bytes)
            raise Dropped()

    def drop(self, after_bytes=None):
        """Read part of the body, then cut the connection without answering."""
        self.handler.drop_connection(after_bytes)
        raise Dropped()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin-hub/1"

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass

    # --- body handling -------------------------------------------------------------------

    def _content_length(self):
        value = self.headers.get("Content-Length")
        return int(value) if value else None

    def read_body(self):
        if self._body_read:
            return b""
        self._body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = self._content_length() or 0
        return self.rfile.read(length) if length else b""

    def read_partial(self, limit):
        """Read at most ``limit`` bytes of a Content-Length body (the rest stays unread)."""
        self._body_read = True
        length = self._content_length() or 0
        return self.rfile.read(min(limit, length)) if length else b""

    def drop_connection(self, after_bytes=None):
        length = self._content_length() or 0
        if not self._body_read:
            self.read_partial(length // 2 if after_bytes is None else after_bytes)
        self.close_connection = True
        try:
            # RST rather than FIN, so the client sees a reset connection mid-request.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- answering -----------------------------------------------------------------------

    def send(self, status, body=b"", headers=None, content_type="application/octet-stream", cut_after=None):
        """Answer; with ``cut_after``, announce the whole body but cut the connection after that many bytes."""
        self._log("dropped" if cut_after is not None else status)  # before the client can see the answer
        headers = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or "Content-Length" not in headers:
            headers.setdefault("Content-Type", content_type)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut_after is not None:
            self.wfile.write(body[:cut_after])
            self.wfile.flush()
            self.drop_connection()
            return
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        self.send(status, json.dumps(obj).encode(), headers, content_type="application/json")

    def _log(self, status):
        """Record this request in ``hub.log``, once."""
        if not self._logged:
            self._logged = True
            self.server.hub.log.append((self.command, self._target_path, status))

    def _dispatch(self):
        self._body_read = False
        self._logged = False
        hub = self.server.hub
        target = urlsplit(self.path)  # absolute-form when we are used as a proxy
        self._target_path = target.path
        request = Request(
            handler=self,
            method=self.command,
            path=target.path,
            query=parse_qs(target.query),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        try:
            try:
                if target.path.startswith("/api/v1/") or target.path.startswith("/_standin/kaggle/"):
                    kaggle_api.handle(request)
                else:
                    hf_api.handle(request)
            except Dropped:
                self._log("dropped")
            except HttpError as e:
                request.body()  # keep the connection usable: consume what the client sent
                self.send_json(e.status, e.body, e.headers)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as e:  # a bug in the stand-in: say so loudly, as a 500
                request.body()
                self.send_json(500, {"error": f"stand-in bug: {type(e).__name__}: {e}"})
                hub.bugs.append(e)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped waiting (a delay fault)
            self._log("client gone")
            self.close_connection = True
        finally:
            self._log(None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.open_connections = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_all_connections(self):
        """Close kept-alive connections too: after ``stop`` nothing may answer any more."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # dropped connections are expected; real bugs are recorded in hub.bugs


class StandinHub:
    """A Hugging Face Hub and Kaggle Models stand-in on 127.0.0.1, state in memory.

    Knobs for tests: ``faults`` (see ``Faults``), ``reject_auth`` (every authenticated
    request gets 401), ``hf.gate(repo_id)``, ``kaggle.gate(owner, model)``. ``log`` lists
    ``(method, path, status)`` of every request served, each entered before its answer leaves
    (so a client holding the answer finds it there); ``bugs`` collects exceptions the
    stand-in itself raised (a test should find it empty).
    """

    def __init__(self, host="127.0.0.1", port=0):
        self.faults = Faults()
        self.reject_auth = False
        self.hf_tokens = {HF_TOKEN}
        self.kaggle_credentials = {(KAGGLE_USERNAME, KAGGLE_KEY)}
        self.kaggle_tokens = {KAGGLE_API_TOKEN: KAGGLE_USERNAME}
        self.hf = hf_api.HFState()
        self.kaggle = kaggle_api.KaggleState()
        self.log = []
        self.bugs = []
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.hub = self
        self._thread = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="standin-hub", daemon=True
        )
        self._thread.start()
        return self

    def hold(self, seconds):
        """Wait ``seconds`` in a request handler (a delay fault), or until the stand-in stops."""
        self._stopping.wait(seconds)

    def stop(self):
        """Stop serving and free the port; later requests see "connection refused"."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.cut_all_connections()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def requests_to(self, fragment, method=None):
        """The logged requests whose path contains ``fragment``."""
        return [r for r in self.log if fragment in r[1] and (method is None or r[0] == method)]

    def client_env(self, home):
        """Environment that points huggingface_hub, kagglehub and kagglesdk at this stand-in.

        ``home`` is a scratch directory for the clients' caches and config.
        """
        home = str(home)
        return {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": HF_TOKEN,
            "HF_HOME": f"{home}/hf-home",
            "HF_HUB_CACHE": f"{home}/hf-home/hub",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # kagglesdk: LOCALHOST is the fixed URL http://localhost (port 80); this server is
            # made its HTTP proxy, and 127.0.0.1 (this server's own URLs, HF_ENDPOINT) is direct.
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.url,
            "http_proxy": self.url,
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
            "KAGGLE_USERNAME": KAGGLE_USERNAME,
            "KAGGLE_KEY": KAGGLE_KEY,
            "KAGGLE_CONFIG_DIR": f"{home}/kaggle-config",
            "KAGGLEHUB_CACHE": f"{home}/kagglehub",
            # kagglesdk also reads ~/.kaggle/{access_token,kaggle.json}: keep a developer's real ones out.
            "HOME": f"{home}/home",
        }

    # Variables the stand-in's environment must not carry over from the caller's.
    CLIENT_ENV_UNSET = (
        "HF_HUB_OFFLINE",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "KAGGLE_API_TOKEN",
        "KAGGLE_KERNEL_RUN_TYPE",
        "TBE_RUNTIME_ADDR",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    )
