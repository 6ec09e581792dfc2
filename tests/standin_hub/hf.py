"""The Hugging Face Hub API, as far as huggingface_hub uses it to create, upload and download.

Covered: ``create_repo`` (409 carries ``url``), ``repo_info``/``model_info`` (with and without a
revision), ``list_repo_tree``, ``preupload`` (always ``"regular"``: an ``lfs`` answer would send
hf_xet to its CAS protocol), ``commit`` (the NDJSON payload the client sends), ``resolve``
(GET/HEAD with ``ETag``, ``X-Repo-Commit``, ranges), ``validate-yaml`` and ``whoami-v2``.
Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``,
``GatedRepo``) the way huggingface_hub's ``hf_raise_for_status`` reads them.
"""

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from tests.standin_hub.common import KAGGLE_USERNAME as STANDIN_USER
from tests.standin_hub.common import HttpError

GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_sha1(data):
    """The git blob id of ``data``: what the Hub reports as a regular file's ``oid`` and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict  # path -> bytes
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    gated: bool = False
    granted: set = field(default_factory=set)  # tokens allowed through the gate
    commits: dict = field(default_factory=dict)  # sha -> Commit
    branches: dict = field(default_factory=dict)  # name -> sha


class HFState:
    """Repos, commits and files, in memory; every method is safe to call from tests."""

    def __init__(self):
        self.lock = threading.RLock()
        self.repos = {}
        self._counter = itertools.count()

    def create_repo(self, repo_id, private=False):
        """A new repo whose ``main`` holds ``.gitattributes``, as the real Hub creates it."""
        with self.lock:
            repo = Repo(repo_id, private=private)
            self.repos[repo_id] = repo
            self._commit(repo, "main", "initial commit", {".gitattributes": GITATTRIBUTES})
            return repo

    def put_files(self, repo_id, files, message="put by a test"):
        """Commit ``{path: bytes}`` to ``main`` of ``repo_id`` (created if missing) as they are, names
        unchecked, so a test can serve what no client would upload; the commit sha."""
        with self.lock:
            repo = self.repos.get(repo_id) or self.create_repo(repo_id)
            files = {**self.resolve(repo, "main").files, **files}
            return self._commit(repo, "main", message, files)

    def gate(self, repo_id, granted=()):
        """Make ``repo_id`` gated: only tokens in ``granted`` may read it."""
        with self.lock:
            repo = self.repos.get(repo_id) or self.create_repo(repo_id)
            repo.gated = True
            repo.granted = set(granted)

    def head(self, repo_id, branch="main"):
        with self.lock:
            return self.repos[repo_id].branches[branch]

    def files(self, repo_id, revision="main"):
        """``{path: bytes}`` at ``revision`` (a branch or commit sha)."""
        with self.lock:
            return dict(self.resolve(self.repos[repo_id], revision).files)

    def commits(self, repo_id):
        """Commit shas of ``repo_id``, oldest first."""
        with self.lock:
            return list(self.repos[repo_id].commits)

    def resolve(self, repo, revision):
        with self.lock:
            sha = repo.branches.get(revision)
            if sha is None and revision in repo.commits:
                sha = revision
            if sha is None:
                raise _revision_not_found(repo.repo_id, revision)
            return repo.commits[sha]

    def _commit(self, repo, branch, message, files):
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(
            json.dumps(
                [parent, message, sorted((p, git_sha1(d)) for p, d in files.items()), next(self._counter)]
            ).encode()
        ).hexdigest()
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        repo.commits[digest] = Commit(digest, parent, message, files, date)
        repo.branches[branch] = digest
        return digest


# --- errors the client recognises -----------------------------------------------------------


def _repo_not_found(repo_id):
    return HttpError(
        404,
        {"error": "Repository not found"},
        {"X-Error-Code": "RepoNotFound", "X-Error-Message": f"Repository {repo_id} not found"},
    )


def _revision_not_found(repo_id, revision):
    return HttpError(
        404,
        {"error": f"Invalid rev id: {revision}"},
        {"X-Error-Code": "RevisionNotFound", "X-Error-Message": f"Invalid rev id: {revision}"},
    )


def _entry_not_found(path, commit=None):
    headers = {"X-Error-Code": "EntryNotFound", "X-Error-Message": f"{path} does not exist"}
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return HttpError(404, {"error": f"Entry not found: {path}"}, headers)


def _unauthorized(message=INVALID_CREDENTIALS):
    return HttpError(401, {"error": message}, {"X-Error-Message": message})


def _injected(req, op):
    status = req.injected_failure(op)
    if status is None:
        return
    raise HttpError(
        status, {"error": f"injected failure ({op})"}, {"X-Error-Message": f"injected failure ({op})"}
    )


# --- access -----------------------------------------------------------------------------------


def _token(req, required=False):
    auth = req.basic_or_bearer()
    if auth is None:
        if required:
            raise _unauthorized("You must be authenticated to do this")
        return None
    kind, token = auth
    if kind != "bearer" or req.hub.reject_auth or token not in req.hub.hf_tokens:
        raise _unauthorized()
    return token


def _readable(req, repo_id):
    token = _token(req)
    state = req.hub.hf
    with state.lock:
        repo = state.repos.get(repo_id)
        if repo is None or (repo.private and token is None):
            raise _repo_not_found(repo_id)
        if repo.gated and token not in repo.granted:
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            raise HttpError(
                401 if token is None else 403,
                {"error": message},
                {"X-Error-Code": "GatedRepo", "X-Error-Message": message},
            )
        return repo


def _writable(req, repo_id):
    _token(req, required=True)
    with req.hub.hf.lock:
        repo = req.hub.hf.repos.get(repo_id)
        if repo is None:
            raise _repo_not_found(repo_id)
        return repo


# --- routes -----------------------------------------------------------------------------------


def _create_repo(req):
    _injected(req, "hf.create_repo")
    _token(req, required=True)
    payload = req.json()
    if payload.get("type") not in (None, "model"):
        raise HttpError(400, {"error": "the stand-in hosts model repos only"})
    repo_id = f"{payload.get('organization') or STANDIN_USER}/{payload['name']}"
    private = payload.get("visibility") == "private" or bool(payload.get("private"))
    url = f"{req.hub.url}/{repo_id}"
    state = req.hub.hf
    with state.lock:
        if repo_id in state.repos:
            raise HttpError(409, {"error": "You already created this model repo", "url": url})
        state.create_repo(repo_id, private=private)
    req.handler.send_json(200, {"url": url, "name": repo_id, "id": repo_id})


def _validate_yaml(req):
    req.body()
    req.handler.send_json(200, {"errors": [], "warnings": []})


def _whoami(req):
    _token(req, required=True)
    req.handler.send_json(
        200,
        {"type": "user", "name": STANDIN_USER, "orgs": [], "auth": {"accessToken": {"role": "write"}}},
    )


def _info(req, repo, rev=None):
    _injected(req, "hf.info")
    repo_id = unquote(repo)
    repo_obj = _readable(req, repo_id)
    commit = req.hub.hf.resolve(repo_obj, unquote(rev) if rev else "main")
    req.handler.send_json(
        200,
        {
            "_id": repo_id,
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "private": repo_obj.private,
            "gated": "manual" if repo_obj.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        },
    )


def _tree(req, repo, rev, path=None):
    _injected(req, "hf.tree")
    repo_id = unquote(repo)
    commit = req.hub.hf.resolve(_readable(req, repo_id), unquote(rev))
    prefix = unquote(path).strip("/") + "/" if path else ""
    recursive = str(req.param("recursive", "false")).lower() in ("1", "true")
    files = {p: d for p, d in commit.files.items() if p.startswith(prefix)}
    if prefix and not files:
        raise _entry_not_found(prefix.rstrip("/"), commit.sha)
    entries, folders = [], set()
    for p in sorted(files):
        rest = p[len(prefix):].split("/")
        for depth in range(1, len(rest)):
            folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            entries.append({"type": "file", "oid": git_sha1(files[p]), "size": len(files[p]), "path": p})
    for folder in sorted(folders):
        if recursive or "/" not in folder[len(prefix):]:
            oid = hashlib.sha1(folder.encode()).hexdigest()
            entries.insert(0, {"type": "directory", "oid": oid, "size": 0, "path": folder})
    req.handler.send_json(200, entries)


def _preupload(req, repo, rev):
    _injected(req, "hf.preupload")
    repo_obj = _writable(req, unquote(repo))
    payload = req.json()
    commit = req.hub.hf.resolve(repo_obj, unquote(rev))
    answers = []
    for f in payload.get("files", []):
        answer = {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
        if f["path"] in commit.files:
            answer["oid"] = git_sha1(commit.files[f["path"]])
        answers.append(answer)
    req.handler.send_json(200, {"files": answers, "commitOid": commit.sha})


def _commit(req, repo, rev):
    _injected(req, "hf.commit")
    repo_id = unquote(repo)
    repo_obj = _writable(req, repo_id)
    branch = unquote(rev)
    if req.param("create_pr"):
        raise HttpError(400, {"error": "the stand-in does not do pull requests"})
    lines = [json.loads(line) for line in req.body().splitlines() if line.strip()]
    state = req.hub.hf
    with state.lock:
        if branch not in repo_obj.branches:
            raise _revision_not_found(repo_id, branch)
        head = repo_obj.branches[branch]
        files = dict(repo_obj.commits[head].files)
        message = "commit"
        for item in lines:
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                message = value.get("summary") or message
                parent = value.get("parentCommit")
                if parent and parent != head:
                    raise HttpError(412, {"error": "A commit has happened since. Please refresh and try again."})
            elif key == "file":
                content = value["content"]
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                files[value["path"]] = data
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _entry_not_found(f"A file with this name doesn't exist: {value['path']}")
                del files[value["path"]]
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for p in [p for p in files if p.startswith(folder)]:
                    del files[p]
            elif key == "lfsFile":
                raise HttpError(422, {"error": "the stand-in answers preupload with 'regular': no LFS files"})
            else:
                raise HttpError(400, {"error": f"unknown commit operation {key!r}"})
        sha = state._commit(repo_obj, branch, message, files)
    req.handler.send_json(
        200,
        {"success": True, "commitOid": sha, "commitUrl": f"{req.hub.url}/{repo_id}/commit/{sha}", "hookOutput": ""},
    )


def _resolve(req, repo, rev, path):
    _injected(req, "hf.resolve")
    if req.method == "GET":
        _injected(req, "hf.file")
    repo_id = unquote(repo)
    commit = req.hub.hf.resolve(_readable(req, repo_id), unquote(rev))
    path = unquote(path)
    if path not in commit.files:
        raise _entry_not_found(path, commit.sha)
    data = commit.files[path]
    headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_sha1(data)}"', "Accept-Ranges": "bytes"}
    status = 200
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", req.header("range", "") or "")
    if match and req.method == "GET":
        start = int(match[1])
        end = int(match[2]) if match[2] else len(data) - 1
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        data, status = data[start : end + 1], 206
    req.send_bytes(status, data, headers)


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ({"POST"}, re.compile(r"/api/repos/create"), _create_repo),
    ({"POST"}, re.compile(r"/api/validate-yaml"), _validate_yaml),
    ({"GET"}, re.compile(r"/api/whoami-v2"), _whoami),
    ({"GET"}, re.compile(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?"), _info),
    ({"GET"}, re.compile(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"), _tree),
    ({"POST"}, re.compile(rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)"), _preupload),
    ({"POST"}, re.compile(rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)"), _commit),
    ({"GET", "HEAD"}, re.compile(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), _resolve),
]


def handle(req):
    for methods, pattern, route in _ROUTES:
        match = pattern.fullmatch(req.path)
        if match and req.method in methods:
            return route(req, **{k: v for k, v in match.groupdict().items() if v is not None})
    raise HttpError(404, {"error": f"the stand-in has no route for {req.method} {req.path}"})
