"""Kaggle's ``/api/v1/<Service>/<Method>`` JSON API, as far as kagglehub uses it for models.

``model_upload``: ``GetModel`` (404 -> ``CreateModel``), ``StartBlobUpload`` then a resumable PUT of
the bytes to the returned ``createUrl`` (served here, with GCS's 308 + ``Range`` semantics), then
``CreateModelInstance``, which answers HTTP 200 with ``errorCode: 409`` when the instance exists,
after which the client calls ``CreateModelInstanceVersion``.
``model_download``: ``GetModelInstance`` (latest version), ``ListModelInstanceVersionFiles``,
``DownloadModelInstanceVersion`` (a 302 to the file, or to a zip of the whole version).
Errors are HTTP statuses with a JSON ``{"code", "message"}`` body, which kagglesdk raises on.
"""

import base64
import hashlib
import io
import itertools
import re
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from tests.standin_hub.common import HttpError


@dataclass
class Blob:
    token: str
    name: str
    size: int
    data: bytearray = field(default_factory=bytearray)

    @property
    def complete(self):
        return len(self.data) == self.size


@dataclass
class Version:
    number: int
    notes: str
    files: dict  # path -> bytes
    created: str


@dataclass
class Instance:
    slug: str
    framework: str
    license: str | None
    versions: list = field(default_factory=list)


@dataclass
class Model:
    owner: str
    slug: str
    title: str
    private: bool
    id: int
    instances: dict = field(default_factory=dict)  # (framework, slug) -> Instance


class KaggleState:
    """Models, instances, numbered versions and upload blobs, in memory."""

    def __init__(self):
        self.lock = threading.RLock()
        self.models = {}  # (owner, slug) -> Model
        self.blobs = {}  # token -> Blob
        self.gated = set()  # (owner, slug)
        self._ids = itertools.count(1)

    def gate(self, owner, model):
        """Downloads of ``owner/model`` answer 403 until the (absent) consent is given."""
        with self.lock:
            self.gated.add((owner, model))

    def put_version(self, owner, model, framework, variation, files):
        """A new version of the instance (created if missing) holding exactly ``{path: bytes}``, names
        unchecked, so a test can serve what Kaggle would not accept; its number."""
        with self.lock:
            m = self.models.get((owner, model)) or self._create_model(owner, model, model, False)
            inst = m.instances.setdefault((framework, variation), Instance(variation, framework, None))
            inst.versions.append(Version(len(inst.versions) + 1, "put by a test", dict(files), _now()))
            return len(inst.versions)

    def versions(self, owner, model, framework, variation):
        """Version numbers of an instance, oldest first ([] when it does not exist)."""
        with self.lock:
            inst = self._instance(owner, model, framework, variation)
            return [v.number for v in inst.versions] if inst else []

    def files(self, owner, model, framework, variation, version=None):
        """``{path: bytes}`` of a version (default: the latest)."""
        with self.lock:
            inst = self._instance(owner, model, framework, variation)
            return dict((inst.versions[version - 1] if version else inst.versions[-1]).files)

    def _instance(self, owner, model, framework, variation):
        m = self.models.get((owner, model))
        return m.instances.get((framework, variation)) if m else None

    def _create_model(self, owner, slug, title, private):
        m = Model(owner, slug, title or slug, private, next(self._ids))
        self.models[(owner, slug)] = m
        return m


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _framework(value):
    """``MODEL_FRAMEWORK_KERAS`` (what kagglesdk sends) -> ``keras``."""
    return str(value or "").lower().removeprefix("model_framework_")


def _error(status, message):
    return HttpError(status, {"code": status, "message": message})


def _injected(req, op):
    status = req.injected_failure(op)
    if status is not None:
        raise _error(status, f"injected failure ({op})")


def _user(req, required):
    auth = req.basic_or_bearer()
    if auth is None:
        if required:
            raise _error(401, "Unauthenticated: this call needs Kaggle credentials")
        return None
    hub = req.hub
    kind, cred = auth
    if not hub.reject_auth:
        if kind == "basic" and tuple(cred) in hub.kaggle_credentials:
            return cred[0]
        if kind == "bearer" and cred in hub.kaggle_tokens:
            return hub.kaggle_tokens[cred]
    raise _error(401, "Unauthenticated: invalid Kaggle credentials")


def _model_json(req, m):
    return {
        "id": m.id,
        "ref": f"{m.owner}/{m.slug}",
        "title": m.title,
        "slug": m.slug,
        "author": m.owner,
        "isPrivate": m.private,
        "url": f"{req.hub.url}/models/{m.owner}/{m.slug}",
    }


def _find_model(req, body, user):
    state = req.hub.kaggle
    m = state.models.get((body.get("ownerSlug"), body.get("modelSlug")))
    if m is None or (m.private and user is None):
        raise _error(404, f"Model '{body.get('ownerSlug')}/{body.get('modelSlug')}' not found")
    return m


def _find_instance(req, body, user):
    m = _find_model(req, body, user)
    inst = m.instances.get((_framework(body.get("framework")), body.get("instanceSlug")))
    if inst is None or not inst.versions:
        raise _error(404, f"Model instance '{m.owner}/{m.slug}/{body.get('instanceSlug')}' not found")
    return m, inst


def _find_version(req, body, user):
    m, inst = _find_instance(req, body, user)
    if (m.owner, m.slug) in req.hub.kaggle.gated:
        raise _error(403, f"You must accept the terms of '{m.owner}/{m.slug}' on its model page to download it")
    number = body.get("versionNumber") or 0
    if not 1 <= number <= len(inst.versions):
        raise _error(404, f"Version {number} of '{m.owner}/{m.slug}/{inst.slug}' not found")
    return m, inst, inst.versions[number - 1]


# --- API methods (all POST, JSON in and out) ---------------------------------------------------


def _get_model(req, body):
    req.handler.send_json(200, _model_json(req, _find_model(req, body, _user(req, False))))


def _create_model(req, body):
    _user(req, True)
    state = req.hub.kaggle
    with state.lock:
        key = (body.get("ownerSlug"), body.get("slug"))
        if key in state.models:
            req.handler.send_json(200, {"error": f"Model '{key[0]}/{key[1]}' already exists", "errorCode": 409})
            return
        m = state._create_model(*key, body.get("title"), bool(body.get("isPrivate")))
    req.handler.send_json(200, {"id": m.id, "ref": f"{m.owner}/{m.slug}", "url": _model_json(req, m)["url"]})


def _collect_files(req, directory, prefix=""):
    """Files of an upload tree (``{"files": [{"token"}], "directories": [...]}``) as ``{path: bytes}``."""
    files = {}
    for entry in directory.get("files") or []:
        blob = req.hub.kaggle.blobs.get(entry.get("token"))
        if blob is None:
            raise ValueError(f"unknown upload token {entry.get('token')!r}")
        if not blob.complete:
            raise ValueError(f"upload of '{blob.name}' is incomplete ({len(blob.data)} of {blob.size} bytes)")
        files[prefix + blob.name] = bytes(blob.data)
    for sub in directory.get("directories") or []:
        files.update(_collect_files(req, sub, f"{prefix}{sub['name']}/"))
    if not prefix and list(files) == ["archive.zip"] and not directory.get("directories"):
        # kagglehub zips folders of more than 50 files into one archive.zip; Kaggle unpacks it.
        with zipfile.ZipFile(io.BytesIO(files.pop("archive.zip"))) as z:
            files = {name: z.read(name) for name in z.namelist() if not name.endswith("/")}
    return files


def _new_version(req, inst, files_tree, notes):
    try:
        files = _collect_files(req, files_tree)
    except ValueError as e:
        req.handler.send_json(200, {"error": str(e), "errorCode": 400})
        return None
    version = Version(len(inst.versions) + 1, notes, files, _now())
    inst.versions.append(version)
    return version


def _create_instance(req, body):
    _user(req, True)
    state = req.hub.kaggle
    payload = body.get("body") or {}
    with state.lock:
        m = state.models.get((body.get("ownerSlug"), body.get("modelSlug")))
        if m is None:
            req.handler.send_json(200, {"error": "Model not found", "errorCode": 404})
            return
        key = (_framework(payload.get("framework")), payload.get("instanceSlug"))
        if key in m.instances and m.instances[key].versions:
            req.handler.send_json(200, {"error": "Model instance already exists", "errorCode": 409})
            return
        inst = m.instances.setdefault(key, Instance(key[1], key[0], payload.get("licenseName")))
        version = _new_version(req, inst, payload, "Initial version")
        if version is None:
            return
    ref = f"{m.owner}/{m.slug}/{key[0]}/{key[1]}"
    req.handler.send_json(200, {"id": m.id, "ref": ref, "url": f"{req.hub.url}/models/{ref}/{version.number}"})


def _create_version(req, body):
    _user(req, True)
    state = req.hub.kaggle
    payload = body.get("body") or {}
    with state.lock:
        m = state.models.get((body.get("ownerSlug"), body.get("modelSlug")))
        inst = m.instances.get((_framework(body.get("framework")), body.get("instanceSlug"))) if m else None
        if inst is None:
            req.handler.send_json(200, {"error": "Model instance not found", "errorCode": 404})
            return
        version = _new_version(req, inst, payload, payload.get("versionNotes", ""))
        if version is None:
            return
    ref = f"{m.owner}/{m.slug}/{inst.framework}/{inst.slug}"
    req.handler.send_json(200, {"id": m.id, "ref": ref, "url": f"{req.hub.url}/models/{ref}/{version.number}"})


def _get_instance(req, body):
    m, inst = _find_instance(req, body, _user(req, False))
    latest = inst.versions[-1]
    req.handler.send_json(
        200,
        {
            "id": m.id * 1000 + len(m.instances),
            "slug": inst.slug,
            "framework": f"MODEL_FRAMEWORK_{inst.framework.upper()}",
            "versionId": latest.number,
            "versionNumber": latest.number,
            "licenseName": inst.license or "",
            "url": f"{req.hub.url}/models/{m.owner}/{m.slug}/{inst.framework}/{inst.slug}",
            "totalUncompressedBytes": sum(len(d) for d in latest.files.values()),
        },
    )


def _list_files(req, body):
    _, _, version = _find_version(req, body, _user(req, False))
    names = sorted(version.files)
    start = int(body.get("pageToken") or 0)
    size = int(body.get("pageSize") or 20)
    page = names[start : start + size]
    req.handler.send_json(
        200,
        {
            "files": [{"name": n, "size": len(version.files[n]), "creationDate": version.created} for n in page],
            "nextPageToken": str(start + size) if start + size < len(names) else "",
        },
    )


def _download(req, body):
    m, inst, version = _find_version(req, body, _user(req, False))
    base = f"{req.hub.url}/_standin/kaggle"
    where = f"{quote(m.owner)}/{quote(m.slug)}/{inst.framework}/{quote(inst.slug)}/{version.number}"
    path = body.get("path")
    if path:
        if path not in version.files:
            raise _error(404, f"File '{path}' not found in version {version.number}")
        location = f"{base}/files/{where}/{quote(path, safe='')}"  # a hostile '../x' arrives intact
    else:
        location = f"{base}/archive/{where}"
    req.body()
    req.handler.send(302, b"", {"Location": location})


def _start_blob_upload(req, body):
    _user(req, True)
    blob = Blob(uuid.uuid4().hex, body.get("name") or "blob", int(body.get("contentLength") or 0))
    with req.hub.kaggle.lock:
        req.hub.kaggle.blobs[blob.token] = blob
    req.handler.send_json(
        200, {"token": blob.token, "createUrl": f"{req.hub.url}/_standin/kaggle/upload/{blob.token}"}
    )


_METHODS = {
    ("blobs.BlobApiService", "StartBlobUpload"): _start_blob_upload,
    ("models.ModelApiService", "GetModel"): _get_model,
    ("models.ModelApiService", "CreateModel"): _create_model,
    ("models.ModelApiService", "CreateModelInstance"): _create_instance,
    ("models.ModelApiService", "CreateModelInstanceVersion"): _create_version,
    ("models.ModelApiService", "GetModelInstance"): _get_instance,
    ("models.ModelApiService", "ListModelInstanceVersionFiles"): _list_files,
    ("models.ModelApiService", "DownloadModelInstanceVersion"): _download,
}


# --- the byte routes: resumable upload, file and archive downloads ----------------------------


def _blob_upload(req, token):
    """GCS-style resumable upload: ``Content-Range: bytes a-b/n`` appends, ``bytes */n`` asks how
    far it got; 308 (with ``Range`` once bytes arrived) until complete, then 200."""
    state = req.hub.kaggle
    blob = state.blobs.get(token)
    if blob is None:
        raise _error(404, "unknown upload session")
    content_range = req.header("content-range", "")
    if content_range.startswith("bytes */"):
        req.body()
        _upload_status(req, blob)
        return
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range)
    start = int(match[1]) if match else 0
    if start > len(blob.data):
        raise _error(400, f"upload resumed at byte {start} but only {len(blob.data)} arrived")
    fault = req.hub.faults.take("kaggle.blob_upload")
    if fault is not None and fault.kind == "drop":
        length = int(req.header("content-length") or 0)
        part = req.handler.read_partial(length // 2 if fault.after_bytes is None else fault.after_bytes)
        with state.lock:
            del blob.data[start:]
            blob.data += part
        req.drop()
    if fault is not None:
        raise _error(fault.status, "injected failure (kaggle.blob_upload)")
    data = req.body()
    with state.lock:
        del blob.data[start:]
        blob.data += data
    _upload_status(req, blob)


def _upload_status(req, blob):
    if blob.complete:
        req.handler.send_json(200, {"name": blob.name, "size": blob.size})
    elif blob.data:
        req.handler.send(308, b"", {"Range": f"bytes=0-{len(blob.data) - 1}"})
    else:
        req.handler.send(308, b"")


def _serve(req, data):
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    req.send_bytes(200, data, {"x-goog-hash": f"md5={md5}"})


def _version_at(req, owner, model, framework, variation, number):
    state = req.hub.kaggle
    with state.lock:
        inst = state._instance(unquote(owner), unquote(model), framework, unquote(variation))
        if inst is None or not 1 <= int(number) <= len(inst.versions):
            raise _error(404, "no such version")
        return inst.versions[int(number) - 1]


def _file(req, owner, model, framework, variation, number, path):
    _injected(req, "kaggle.file")
    files = _version_at(req, owner, model, framework, variation, number).files
    path = unquote(path)
    if path not in files:
        raise _error(404, "no such file")
    _serve(req, files[path])


def _archive(req, owner, model, framework, variation, number):
    _injected(req, "kaggle.file")
    files = _version_at(req, owner, model, framework, variation, number).files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in sorted(files.items()):
            z.writestr(name, data)
    _serve(req, buffer.getvalue())


_WHERE = r"(?P<owner>[^/]+)/(?P<model>[^/]+)/(?P<framework>[^/]+)/(?P<variation>[^/]+)/(?P<number>\d+)"
_BYTE_ROUTES = [
    ({"PUT", "POST"}, re.compile(r"/_standin/kaggle/upload/(?P<token>[0-9a-f]+)"), _blob_upload),
    ({"GET", "HEAD"}, re.compile(rf"/_standin/kaggle/files/{_WHERE}/(?P<path>.+)"), _file),
    ({"GET", "HEAD"}, re.compile(rf"/_standin/kaggle/archive/{_WHERE}"), _archive),
]
_API = re.compile(r"/api/v1/(?P<service>[\w.]+)/(?P<method>\w+)")


def handle(req):
    for methods, pattern, route in _BYTE_ROUTES:
        match = pattern.fullmatch(req.path)
        if match and req.method in methods:
            return route(req, **match.groupdict())
    match = _API.fullmatch(req.path)
    route = _METHODS.get((match["service"], match["method"])) if match else None
    if route is None or req.method != "POST":
        raise _error(404, f"the stand-in has no route for {req.method} {req.path}")
    _injected(req, f"kaggle.{match['method']}")
    body = req.json()
    with req.hub.kaggle.lock:
        return route(req, body)
