"""Preset format v1: manifests catch every change, and writes are all-or-nothing."""

import os

import numpy as np
import pytest

from presetforge import Backbone, IntegrityError, PresetError
from presetforge import preset as preset_lib
from tests.backbones.tiny import make


@pytest.fixture
def preset_dir(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "preset")
    return tmp_path / "preset"


def test_manifest_lists_every_file_with_hash_and_size(preset_dir):
    manifest = preset_lib.read_json(preset_dir, preset_lib.MANIFEST_FILE)
    assert set(manifest["files"]) == {"config.json", "metadata.json", "model.weights.h5"}
    entry = manifest["files"]["model.weights.h5"]
    assert entry["size"] == (preset_dir / "model.weights.h5").stat().st_size
    assert entry["sha256"] == preset_lib.sha256_file(preset_dir / "model.weights.h5")
    assert preset_lib.verify(preset_dir) == preset_lib.sha256_file(preset_dir / "manifest.json")


def test_flipped_byte_is_named(preset_dir):
    path = preset_dir / "model.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="'model.weights.h5': sha256 does not match"):
        Backbone.from_preset(preset_dir)


def test_missing_file_is_named(preset_dir):
    (preset_dir / "config.json").unlink()
    with pytest.raises(IntegrityError, match="'config.json': listed in the manifest but missing"):
        Backbone.from_preset(preset_dir)


def test_extra_file_is_named(preset_dir):
    (preset_dir / "notes.txt").write_text("hello")
    with pytest.raises(IntegrityError, match="'notes.txt': present but not listed"):
        Backbone.from_preset(preset_dir)


def test_missing_manifest_is_named(preset_dir):
    (preset_dir / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="'manifest.json'"):
        Backbone.from_preset(preset_dir)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with preset_lib.writing(tmp_path / "new") as stage:
            stage.file("config.json").write_text("{}")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_failed_rewrite_keeps_the_old_preset(preset_dir):
    identity = preset_lib.verify(preset_dir)
    with pytest.raises(RuntimeError):
        with preset_lib.writing(preset_dir) as stage:
            stage.file("model.weights.h5").write_bytes(b"garbage")
            raise RuntimeError("interrupted")
    assert preset_lib.verify(preset_dir) == identity
    assert sorted(os.listdir(preset_dir.parent)) == ["preset"]


def test_second_writer_adds_files_without_touching_carried_ones(preset_dir):
    weights_before = preset_lib.sha256_file(preset_dir / "model.weights.h5")
    with preset_lib.writing(preset_dir) as stage:
        stage.file("assets/extra/notes.txt").write_text("added")
    preset_lib.verify(preset_dir)
    assert (preset_dir / "assets/extra/notes.txt").read_text() == "added"
    assert preset_lib.sha256_file(preset_dir / "model.weights.h5") == weights_before


def test_rewriting_a_carried_file_does_not_write_through_links(tmp_path, preset_dir):
    """Carried files are hard links; replacing one in a stage must not alter the original."""
    copy_before = preset_lib.sha256_file(preset_dir / "config.json")
    with pytest.raises(RuntimeError):
        with preset_lib.writing(preset_dir) as stage:
            stage.file("config.json").write_text("{}")
            raise RuntimeError("abandon")
    assert preset_lib.sha256_file(preset_dir / "config.json") == copy_before


def test_refuses_to_overwrite_a_non_preset_directory(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("precious")
    with pytest.raises(PresetError, match="exists and is not a preset"):
        make("gpt2").save_to_preset(tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").read_text() == "precious"


def test_weights_digest_tracks_only_weights(preset_dir):
    digest = preset_lib.weights_digest(preset_dir)
    with preset_lib.writing(preset_dir) as stage:
        stage.file("parity.json").write_text("{}")
    assert preset_lib.weights_digest(preset_dir) == digest
    make("gpt2", hidden_dim=8).save_to_preset(preset_dir)
    assert preset_lib.weights_digest(preset_dir) != digest


def _big_preset(tmp_path):
    """A preset with a weights file large enough (> 1 MiB) to be hashed in the background."""
    make("gpt2", vocabulary_size=20_000).save_to_preset(tmp_path / "big")
    assert (tmp_path / "big" / "model.weights.h5").stat().st_size > 1 << 20
    return tmp_path / "big"


def test_background_verification_names_a_large_altered_file(tmp_path):
    path = _big_preset(tmp_path)
    weights = path / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    verification = preset_lib.Verification(path)  # sizes and small files pass at once
    with pytest.raises(IntegrityError, match="'model.weights.h5': sha256 does not match"):
        verification.result()
    with pytest.raises(IntegrityError, match="model.weights.h5"):
        with preset_lib.Verification(path):
            raise ValueError("work done meanwhile failed")  # the integrity failure is what is reported


def test_verification_checks_small_files_at_once(tmp_path):
    path = _big_preset(tmp_path)
    (path / "config.json").write_text((path / "config.json").read_text().replace("20000", "20001"))
    with pytest.raises(IntegrityError, match="'config.json'"):
        preset_lib.Verification(path)


def test_background_verification_returns_the_identity(tmp_path):
    path = _big_preset(tmp_path)
    with preset_lib.Verification(path) as verification:
        pass
    assert verification.result() == preset_lib.sha256_file(path / "manifest.json") == preset_lib.verify(path)


def test_sha256_file_matches_hashlib_across_chunks(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(preset_lib, "_CHUNK", 3 << 20)  # several chunks read and a shorter tail
    data = os.urandom((7 << 20) + 12345)
    (tmp_path / "blob").write_bytes(data)
    assert preset_lib.sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert preset_lib.sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_hash_range_matches_hashlib_across_slices(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(preset_lib, "_SLICE", 3 << 20)  # several mapped slices and a read tail
    data = os.urandom((7 << 20) + 12345)
    (tmp_path / "blob").write_bytes(data)
    fd = os.open(tmp_path / "blob", os.O_RDONLY)
    try:
        for offset, size in ((0, len(data)), (4097, len(data) - 5000)):
            digest = hashlib.sha256()
            preset_lib.hash_range(digest, fd, offset, size)
            assert digest.hexdigest() == hashlib.sha256(data[offset : offset + size]).hexdigest()
    finally:
        os.close(fd)


def test_sealed_digests_are_reused_only_for_unchanged_files(tmp_path):
    with preset_lib.writing(tmp_path / "p") as stage:
        stage.file("a.bin").write_bytes(b"a")
        stage.seal("a.bin", digest=lambda: "digest-from-the-writer")
        stage.file("b.bin").write_bytes(b"b")
        stage.seal("b.bin")  # hashed in the background
        stage.file("c.bin").write_bytes(b"c")
        stage.seal("c.bin", digest=lambda: "stale")
        with open(stage.root / "c.bin", "ab") as f:  # changed after sealing
            f.write(b"more")
    files = preset_lib.read_json(tmp_path / "p", preset_lib.MANIFEST_FILE)["files"]
    assert files["a.bin"]["sha256"] == "digest-from-the-writer"
    assert files["b.bin"]["sha256"] == preset_lib.sha256_file(tmp_path / "p" / "b.bin")
    assert files["c.bin"]["sha256"] == preset_lib.sha256_file(tmp_path / "p" / "c.bin")


def _replace_every_file(source, target):
    """Rename each file of the preset ``source`` over its namesake in ``target``, as a concurrent writer might."""
    for name in preset_lib._files(source) + [preset_lib.MANIFEST_FILE]:
        os.replace(source / name, target / name)


def test_loading_reads_the_bytes_it_verified_even_if_the_files_are_replaced_meanwhile(tmp_path, monkeypatch):
    """Files swapped on disk between hashing and reading: the load still gets exactly the verified preset."""
    import keras

    original, other = make("gpt2"), make("gpt2", hidden_dim=8)
    original.save_to_preset(tmp_path / "p")
    other.save_to_preset(tmp_path / "other")  # a valid preset of its own: nothing on disk looks wrong afterwards
    verification_init = preset_lib.Verification.__init__

    def swapped_after_verification_began(self, root):
        verification_init(self, root)
        _replace_every_file(tmp_path / "other", tmp_path / "p")

    monkeypatch.setattr(preset_lib.Verification, "__init__", swapped_after_verification_began)
    loaded = Backbone.from_preset(tmp_path / "p")
    assert loaded.hidden_dim == original.hidden_dim
    for a, b in zip(original.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))
    monkeypatch.undo()
    assert Backbone.from_preset(tmp_path / "p").hidden_dim == other.hidden_dim  # the swap did happen


def test_large_weights_are_read_from_the_file_hashed_in_the_background(tmp_path):
    path = _big_preset(tmp_path)
    make("gpt2", vocabulary_size=20_000, hidden_dim=8).save_to_preset(tmp_path / "other")
    verified_sha256 = preset_lib.sha256_file(path / "model.weights.h5")
    with preset_lib.Verification(path) as verification:
        _replace_every_file(tmp_path / "other", path)  # while the weights may still be hashing
        with verification.open("model.weights.h5") as f:
            assert preset_lib._sha256_fd(f.fileno()) == verified_sha256
        assert verification.read_json("config.json")["config"]["hidden_dim"] == 16
    assert preset_lib.sha256_file(path / "model.weights.h5") != verified_sha256  # the swap did happen


def test_loading_weights_alone_verifies_them(tmp_path):
    from presetforge.backbones import weights

    make("gpt2").save_to_preset(tmp_path / "p")
    path = tmp_path / "p" / "model.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="'model.weights.h5': sha256 does not match"):
        weights.load(make("gpt2"), tmp_path / "p")


@pytest.mark.parametrize("hand_out", ["open", "map"])
def test_large_file_is_handed_out_or_mapped_only_once_its_hash_matched(tmp_path, hand_out):
    path = _big_preset(tmp_path)
    weights = path / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    verification = preset_lib.Verification(path)  # sizes and small files pass at once
    try:
        with pytest.raises(IntegrityError, match="'model.weights.h5': sha256 does not match"):
            getattr(verification, hand_out)("model.weights.h5")
    finally:
        verification.close()


def test_a_mapped_file_is_the_one_verified_even_if_replaced_meanwhile(tmp_path):
    path = _big_preset(tmp_path)
    make("gpt2", vocabulary_size=20_000, hidden_dim=8).save_to_preset(tmp_path / "other")
    verified = (path / "model.weights.h5").read_bytes()
    with preset_lib.Verification(path) as verification:
        _replace_every_file(tmp_path / "other", path)  # while the weights may still be hashing
        mapped = verification.map("model.weights.h5")
    assert mapped[:] == verified != (path / "model.weights.h5").read_bytes()


def test_writes_to_a_mapped_file_stay_private(tmp_path):
    path = _big_preset(tmp_path)
    original = (path / "model.weights.h5").read_bytes()
    with preset_lib.Verification(path) as verification:
        mapped = verification.map("model.weights.h5")
        mapped[: 1 << 20] = bytes(1 << 20)
        mapped[-1:] = b"x"
        assert mapped[: 1 << 20] == bytes(1 << 20) and mapped[-1:] == b"x"
        assert verification.map("model.weights.h5")[:] == original  # another map of the same descriptor
    assert (path / "model.weights.h5").read_bytes() == original
    preset_lib.verify(path)


def test_the_pool_hashes_the_largest_file_first_and_the_waiting_thread_the_rest(tmp_path, monkeypatch):
    import threading

    sizes = {"a.bin": 2 << 20, "b.bin": 5 << 20, "c.bin": 3 << 20}  # manifest order a, b, c
    with preset_lib.writing(tmp_path / "p") as stage:
        for name, size in sizes.items():
            stage.file(name).write_bytes(os.urandom(size))
    for name in ("a.bin", "c.bin"):
        path = tmp_path / "p" / name
        data = bytearray(path.read_bytes())
        data[7] ^= 0x01
        path.write_bytes(bytes(data))
    hashed, started, rest_hashed = [], threading.Event(), threading.Event()
    sha256_fd = preset_lib._sha256_fd

    def spy(fd):
        size, here = os.fstat(fd).st_size, threading.current_thread() is threading.main_thread()
        hashed.append((size, "waiting thread" if here else "pool"))
        if not here:
            started.set()
            assert rest_hashed.wait(10)  # held until the waiting thread has hashed what the pool did not start
        elif len(hashed) == 3:
            rest_hashed.set()
        return sha256_fd(fd)

    monkeypatch.setattr(preset_lib, "_usable_cores", lambda: 2)  # one pool thread; the caller has the other core
    monkeypatch.setattr(preset_lib, "_sha256_fd", spy)
    verification = preset_lib.Verification(tmp_path / "p")
    try:
        assert started.wait(10)
        with pytest.raises(IntegrityError, match="'a.bin'"):  # the first mismatch in manifest order
            verification.result()
    finally:
        verification.close()
    assert hashed == [(5 << 20, "pool"), (3 << 20, "waiting thread"), (2 << 20, "waiting thread")]
