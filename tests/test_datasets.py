"""lindiff.datasets: IDX/.npy/.npz readers against hand-built files, the bundled loaders,
preprocessing, and clear errors (bad files, absent data, missing optional dependencies)."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from lindiff import datasets


def _idx_bytes(arr: np.ndarray, code: int, be: str) -> bytes:
    """IDX written independently of lindiff: magic 00 00 code ndim, big-endian sizes and values."""
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return head + np.ascontiguousarray(arr).astype(be).tobytes()


_TYPES = [  # (dtype, IDX code, big-endian dtype)
    (np.uint8, 0x08, ">u1"),
    (np.int8, 0x09, ">i1"),
    (np.int16, 0x0B, ">i2"),
    (np.int32, 0x0C, ">i4"),
    (np.float32, 0x0D, ">f4"),
    (np.float64, 0x0E, ">f8"),
]


def _sample(dtype: type, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("dtype,code,be", _TYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_read_hand_built(tmp_path: Path, rng, dtype, code, be, compress) -> None:
    arr = _sample(dtype, (5, 3, 4), rng)
    raw = _idx_bytes(arr, code, be)
    p = tmp_path / ("x.idx.gz" if compress else "x.idx")
    p.write_bytes(gzip.compress(raw) if compress else raw)
    out = datasets.read_idx(p)
    assert out.dtype == np.dtype(dtype) and out.shape == (5, 3, 4)
    np.testing.assert_array_equal(out, arr)
    X = datasets.from_file(p)  # flatten, raw values, float64
    assert X.dtype == np.float64 and X.shape == (5, 12) and X.flags.c_contiguous
    np.testing.assert_array_equal(X, arr.reshape(5, 12).astype(np.float64))


@pytest.mark.parametrize("dtype,code,be", _TYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, rng, dtype, code, be, suffix) -> None:
    arr = _sample(dtype, (7, 2), rng)
    p = tmp_path / f"y-idx2{suffix}"
    datasets.write_idx(p, arr)
    data = p.read_bytes()
    if suffix:
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
    assert data == _idx_bytes(arr, code, be)  # byte-exact against the independent writer
    out = datasets.read_idx(p)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_idx_one_dimensional_and_scale(tmp_path: Path) -> None:
    imgs = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10
    p = tmp_path / "imgs-idx3-ubyte"
    p.write_bytes(_idx_bytes(imgs, 0x08, ">u1"))
    X = datasets.from_file(p, scale=True)
    np.testing.assert_allclose(X, imgs.reshape(2, 6) / 255.0)
    keep = datasets.from_file(p, flatten=False)
    assert keep.shape == (2, 2, 3)
    labels = tmp_path / "lab-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.array([3, 1, 4], np.uint8), 0x08, ">u1"))
    np.testing.assert_array_equal(datasets.read_idx(labels), [3, 1, 4])
    with pytest.raises(ValueError, match="1-D"):
        datasets.from_file(labels)  # samples need a feature axis


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    "name,data,match",
    [
        ("magic", b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"\x00\x00", "magic"),
        ("npy-like", b"\x93NUMPY\x01\x00" + b"\x00" * 40, "magic"),
        ("type", b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x00", "type code"),
        ("short", b"\x00\x00", "header needs 4"),
        ("empty", b"", "header needs 4"),
        ("ndim0", b"\x00\x00\x08\x00", "0 dimensions"),
        ("header", b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        ("body", b"\x00\x00\x08\x02" + struct.pack(">II", 3, 4) + bytes(11), "truncated"),
        ("body-f8", b"\x00\x00\x0e\x01" + struct.pack(">I", 2) + bytes(15), "truncated"),
        ("trailing", b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "trailing"),
    ],
)
def test_idx_bad_files(tmp_path: Path, name: str, data: bytes, match: str) -> None:
    p = _bad(tmp_path, name, data)
    with pytest.raises(ValueError, match=match):
        datasets.read_idx(p)
    with pytest.raises(ValueError, match=match):
        datasets.from_file(p)
    gz = _bad(tmp_path, name + ".gz", gzip.compress(data))  # the same inside gzip
    with pytest.raises(ValueError, match=match):
        datasets.read_idx(gz)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    arr = np.arange(1000, dtype=np.uint8).reshape(10, 100)
    full = gzip.compress(_idx_bytes(arr, 0x08, ">u1"))
    p = _bad(tmp_path, "cut.gz", full[: len(full) // 2])
    with pytest.raises(ValueError, match="gzip"):
        datasets.read_idx(p)
    q = _bad(tmp_path, "junk.gz", b"\x1f\x8b" + b"not gzip at all")
    with pytest.raises(ValueError, match="gzip"):
        datasets.read_idx(q)


def test_write_idx_rejects_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        datasets.write_idx(tmp_path / "x", np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match="dimensions"):
        datasets.write_idx(tmp_path / "x", np.float64(1.0))


# ------------------------------------------------------------------------------------- npy / npz
def test_npy_and_npz(tmp_path: Path, rng) -> None:
    a = rng.standard_normal((6, 2, 2)).astype(np.float32)
    b = rng.integers(0, 255, size=(4, 3)).astype(np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(datasets.from_file(tmp_path / "a.npy"), a.reshape(6, 4))
    np.savez(tmp_path / "one.npz", only=b)
    np.testing.assert_array_equal(datasets.from_file(tmp_path / "one.npz"), b)
    np.savez_compressed(tmp_path / "two.npz", a=a, b=b)
    np.testing.assert_allclose(datasets.from_file(tmp_path / "two.npz", key="b", scale=True),
                               b / 255.0)
    with pytest.raises(ValueError, match="choose one with key="):
        datasets.from_file(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="no array 'c'"):
        datasets.from_file(tmp_path / "two.npz", key="c")
    with pytest.raises(ValueError, match=".npz archives only"):
        datasets.from_file(tmp_path / "a.npy", key="a")
    # load() dispatches on paths too.
    np.testing.assert_array_equal(datasets.load(str(tmp_path / "a.npy")), a.reshape(6, 4))
    np.testing.assert_array_equal(datasets.load(tmp_path / "one.npz"), b)


def test_npy_bad_files(tmp_path: Path) -> None:
    p = _bad(tmp_path, "bad.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="cannot read"):
        datasets.from_file(p)
    np.save(tmp_path / "obj.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="real numbers"):
        datasets.from_file(tmp_path / "obj.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        datasets.from_file(tmp_path / "nan.npy")
    with pytest.raises(FileNotFoundError):
        datasets.from_file(tmp_path / "absent.npy")


def test_preprocessing_options(tmp_path: Path, rng) -> None:
    raw = rng.integers(0, 200, size=(50, 3, 3)).astype(np.uint8)
    np.save(tmp_path / "r.npy", raw)
    p = tmp_path / "r.npy"
    flat = raw.reshape(50, 9).astype(float)
    np.testing.assert_array_equal(datasets.from_file(p), flat)  # default: raw values
    np.testing.assert_allclose(datasets.from_file(p, scale=True), flat / 255)
    np.testing.assert_allclose(datasets.from_file(p, scale=0.5), flat * 0.5)
    c = datasets.from_file(p, scale=True, centre=True)
    np.testing.assert_allclose(c.mean(axis=0), 0, atol=1e-14)
    np.testing.assert_allclose(c, flat / 255 - (flat / 255).mean(axis=0), atol=1e-14)
    np.save(tmp_path / "f.npy", rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="pass a number"):
        datasets.from_file(tmp_path / "f.npy", scale=True)  # no full scale for floats
    with pytest.raises(TypeError, match="scale"):
        datasets.from_file(p, scale="yes")
    with pytest.raises(ValueError, match="nonzero"):
        datasets.from_file(p, scale=0.0)
    with pytest.raises(TypeError, match="centre"):
        datasets.from_file(p, centre=1)
    # The input file is not touched and the outputs are fresh arrays.
    a1, a2 = datasets.from_file(p), datasets.from_file(p)
    a1[0, 0] = -1
    assert a2[0, 0] == raw[0, 0, 0]


def test_load_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        datasets.load("mnist")
    assert "digits" in datasets.names() and "fashion_mnist" in datasets.names()


# ------------------------------------------------------------------------------------- bundled data
def test_digits() -> None:
    pytest.importorskip("sklearn")
    X = datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert X.min() == 0.0 and X.max() == 1.0
    raw = datasets.load("digits", scale=False)
    np.testing.assert_array_equal(raw, X * 16)
    assert set(np.unique(raw)) <= set(range(17))
    assert datasets.digits(flatten=False).shape == (1797, 8, 8)


def test_lfw() -> None:
    pytest.importorskip("skimage")
    X = datasets.lfw()
    assert X.shape == (200, 625) and 0.0 <= X.min() and X.max() <= 1.0


def test_image_patches_bundled() -> None:
    pytest.importorskip("skimage")
    P = datasets.image_patches(k=5, n=300, rng=3)
    assert P.shape == (300, 25) and P.dtype == np.float64
    assert 0.0 <= P.min() and P.max() <= 1.0 and P.std() > 0.05
    np.testing.assert_array_equal(P, datasets.image_patches(k=5, n=300, rng=3))  # deterministic
    assert not np.array_equal(P, datasets.image_patches(k=5, n=300, rng=4))
    assert datasets.load("patches", k=4, n=10, rng=0, flatten=False).shape == (10, 4, 4)
    with pytest.raises(ValueError, match="no bundled image"):
        datasets.image_patches(images=["no_such_image"], n=2)


def test_image_patches_are_windows_of_the_images() -> None:
    # Pixel values encode their position, so every patch can be located (needs no scikit-image).
    H, W, k = 12, 9, 3
    img = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    img2 = img + 20000
    P = datasets.image_patches(k=k, n=400, images=[img, img2], rng=np.random.default_rng(1),
                               scale=False, flatten=False)
    assert P.shape == (400, k, k)
    which = P[:, 0, 0] >= 20000
    assert 100 < which.sum() < 300  # both images used, in proportion to their windows
    for p, second in zip(P, which):
        v = int(p[0, 0]) - (20000 if second else 0)
        r, c = divmod(v, W)
        assert r <= H - k and c <= W - k
        np.testing.assert_array_equal(p, (img2 if second else img)[r:r + k, c:c + k])
    starts = {int(p[0, 0]) for p in P if p[0, 0] < 20000}
    assert len(starts) > 30  # many distinct windows, not one repeated
    # Scale: uint16 full scale is 65535.
    S = datasets.image_patches(k=k, n=5, images=[img], rng=2)
    raw = datasets.image_patches(k=k, n=5, images=[img], rng=2, scale=False)
    np.testing.assert_allclose(S * 65535, raw)


def test_image_patches_rgb_to_gray() -> None:
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    P = datasets.image_patches(k=4, n=3, images=[rgb], rng=0)
    np.testing.assert_allclose(P, (0.2125 * 100 + 0.7154 * 200 + 0.0721 * 50) / 255)
    with pytest.raises(ValueError, match="smaller than the patch"):
        datasets.image_patches(k=11, n=1, images=[rgb])
    with pytest.raises(ValueError, match="different full scales"):
        datasets.image_patches(k=2, n=2, images=[rgb, np.zeros((4, 4))])


def test_missing_optional_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    for call in (datasets.digits, datasets.lfw, lambda: datasets.image_patches(n=2)):
        with pytest.raises(ImportError, match=r"pip install 'lindiff\[data\]'"):
            call()
    # Arrays given directly need no optional dependency.
    assert datasets.image_patches(k=2, n=2, images=[np.zeros((3, 3))]).shape == (2, 4)


# ------------------------------------------------------------------------------ Fashion-MNIST
def _fake_fashion(directory: Path, n: int, compress: bool,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    imgs = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    sfx = ".gz" if compress else ""
    datasets.write_idx(directory / f"train-images-idx3-ubyte{sfx}", imgs)
    datasets.write_idx(directory / f"train-labels-idx1-ubyte{sfx}", labels)
    return imgs, labels


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_directory(tmp_path: Path, rng, compress: bool) -> None:
    imgs, labels = _fake_fashion(tmp_path, 12, compress, rng)
    X = datasets.fashion_mnist(tmp_path)
    np.testing.assert_allclose(X, imgs.reshape(12, 784) / 255.0)
    X2, y = datasets.fashion_mnist(str(tmp_path), labels=True, n=5)
    np.testing.assert_array_equal(X2, X[:5])
    np.testing.assert_array_equal(y, labels[:5])
    pooled = datasets.fashion_mnist(tmp_path, pool=2, scale=False)
    assert pooled.shape == (12, 196)
    np.testing.assert_allclose(pooled[3, 0], imgs[3, :2, :2].mean())
    np.testing.assert_allclose(pooled.reshape(12, 14, 14)[7, 5, 6], imgs[7, 10:12, 12:14].mean())
    with pytest.raises(ValueError, match="does not divide"):
        datasets.fashion_mnist(tmp_path, pool=3)
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        datasets.fashion_mnist(tmp_path, kind="test")
    with pytest.raises(ValueError, match="kind"):
        datasets.fashion_mnist(tmp_path, kind="validation")


def test_fashion_mnist_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist()
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        datasets.load("fashion_mnist", path=tmp_path)


def test_fashion_mnist_debian() -> None:
    if not Path(datasets.DEBIAN_FASHION_MNIST).is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed "
                    f"({datasets.DEBIAN_FASHION_MNIST} absent; apt-get install "
                    "dataset-fashion-mnist)")
    X = datasets.fashion_mnist(kind="test")
    assert X.shape == (10000, 784) and X.dtype == np.float64
    assert X.min() == 0.0 and X.max() == 1.0
    X, y = datasets.fashion_mnist(n=1000, labels=True)
    assert X.shape == (1000, 784) and set(np.unique(y)) == set(range(10))
