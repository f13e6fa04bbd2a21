"""Real data sets as ``(n_samples, n_features)`` float64 arrays, for training sets and targets.

Loaders
-------
========================  ==========================================================  =========
name                      source                                                      d
========================  ==========================================================  =========
``digits``                scikit-learn's bundled 8×8 digits (1797 images, 0..16)      64
``patches``               random k×k grayscale patches of scikit-image's bundled       k²
                          natural images (:func:`image_patches`)
``lfw``                   scikit-image's bundled LFW subset (200 faces, 25×25)         625
``fashion_mnist``         IDX files: Debian's ``dataset-fashion-mnist`` package        784
                          (``/usr/share/datasets/fashion-mnist``) or a directory
``<path>``                ``.npy``, ``.npz`` or IDX file (:func:`from_file`)           any
========================  ==========================================================  =========

``load(name, **options)`` dispatches on the name (or on a path to a file).

Preprocessing (the same keyword-only options for every loader, applied in this order)
------------------------------------------------------------------------------------
``flatten`` (default ``True``)
    Reshape each sample to one row: the result is ``(n, d)``. ``False`` keeps the sample shape
    (e.g. ``(n, 28, 28)``).
``scale`` (default ``True`` for the image loaders, ``False`` for :func:`from_file`)
    ``True``: pixel values to [0, 1], by dividing by the largest value the source can hold (16 for
    digits, 255 for 8-bit images, the integer type's maximum for files; lfw is already in [0, 1]).
    ``False``: the source's raw values. A number ``c``: the raw values multiplied by ``c``.
``centre`` (default ``False``)
    Subtract the mean over the samples from every feature. lindiff's models fit the mean
    themselves (the bias b_t), so this changes nothing there; it is offered for other uses.

The result is always a new, C-contiguous float64 array with finite values.

Optional dependencies: ``digits`` needs scikit-learn, ``patches`` (with its default images) and
``lfw`` need scikit-image. Both come with ``pip install 'lindiff[data]'``; a missing one raises an
``ImportError`` naming that command. The IDX, ``.npy`` and ``.npz`` readers need only NumPy.

IDX format (LeCun's MNIST format, read here with NumPy): a 4-byte magic ``0x00 0x00 TYPE NDIM``,
then NDIM big-endian uint32 sizes, then the values in C order, big-endian. TYPE is 0x08 uint8,
0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. Files may be gzip-compressed
(detected from their first bytes, not their name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from ._validation import RNGLike, as_int, as_rng

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "DEFAULT_PATCH_IMAGES",
    "digits",
    "fashion_mnist",
    "from_file",
    "image_patches",
    "lfw",
    "load",
    "names",
    "read_idx",
    "write_idx",
]

PathLike = Union[str, "os.PathLike[str]"]
Scale = Union[bool, float]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

#: scikit-image's bundled natural images used by :func:`image_patches` (RGB ones are converted to
#: grayscale). All ship inside the scikit-image wheel: nothing is downloaded.
DEFAULT_PATCH_IMAGES = (
    "camera", "astronaut", "coins", "moon", "coffee", "chelsea", "grass", "gravel", "brick",
)

_INSTALL = "pip install 'lindiff[data]'"


# ---------------------------------------------------------------------------- helpers
def _require(module: str, package: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {package}, which is not installed: {_INSTALL}") from exc


def _preprocess(raw: np.ndarray, *, flatten: bool, scale: Scale, centre: bool,
                full_scale: float | None, source: str) -> np.ndarray:
    """Apply flatten → scale → centre to ``raw`` (samples along axis 0); returns new float64."""
    if not isinstance(flatten, (bool, np.bool_)):
        raise TypeError(f"flatten must be True or False, got {flatten!r}")
    if not isinstance(centre, (bool, np.bool_)):
        raise TypeError(f"centre must be True or False, got {centre!r}")
    if raw.ndim < 2:
        raise ValueError(
            f"{source}: expected samples along the first axis and at least 2 dimensions, got shape "
            f"{raw.shape} (reshape a 1-D array to (n, 1) explicitly)"
        )
    if raw.shape[0] < 1:
        raise ValueError(f"{source}: contains no samples (shape {raw.shape})")
    X = np.array(raw, dtype=np.float64, order="C", copy=True)
    if flatten:
        X = X.reshape(X.shape[0], -1)
    if isinstance(scale, (bool, np.bool_)):
        if scale:
            if full_scale is None:
                raise ValueError(
                    f"{source}: scale=True needs integer data (divided by the type's maximum); "
                    f"these are {raw.dtype} — pass a number, e.g. scale=1/255, or scale=False"
                )
            X /= full_scale
    else:
        try:
            c = float(scale)
        except (TypeError, ValueError):
            raise TypeError(f"scale must be True, False or a number, got {scale!r}") from None
        if not np.isfinite(c) or c == 0:
            raise ValueError(f"scale must be a finite nonzero number, got {scale!r}")
        X *= c
    if not np.isfinite(X).all():
        raise ValueError(f"{source}: contains NaN or inf values")
    if centre:
        X -= X.mean(axis=0)
    return X


def _full_scale(dtype: np.dtype) -> float | None:
    """The largest value an integer type holds (1 for bool); None for floats."""
    if dtype == np.bool_:
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return None


# ---------------------------------------------------------------------------- IDX files
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.str[1:]: code for code, dt in _IDX_TYPES.items()}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        data = fh.read()
    if head == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from None
    return data


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of its own dtype and shape.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A wrong magic number, an unknown type code, or a size that does not match the header
        (truncated or trailing data).
    """
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4:
        raise ValueError(f"{p}: not an IDX file (only {len(data)} bytes, the header needs 4)")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise ValueError(
            f"{p}: not an IDX file (magic {data[:4].hex()} does not start with 0000)"
        )
    if code not in _IDX_TYPES:
        raise ValueError(
            f"{p}: not an IDX file (unknown type code 0x{code:02x}; expected one of "
            f"{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)})"
        )
    if ndim < 1:
        raise ValueError(f"{p}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{p}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    need = header + count * dtype.itemsize
    if len(data) != need:
        what = "truncated" if len(data) < need else "has trailing data"
        raise ValueError(
            f"{p}: IDX file {what}: header says shape {shape} of {dtype.newbyteorder('=')} "
            f"({need} bytes in all), file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: Any, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: the name ends in
    ``.gz``). Supported dtypes: uint8, int8, int16, int32, float32, float64."""
    arr = np.asarray(array)
    key = arr.dtype.str[1:]  # "u1", "f8", … whatever the byte order
    if key not in _IDX_CODES:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; use one of uint8, int8, int16, "
                         "int32, float32, float64")
    if arr.ndim < 1 or arr.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {arr.ndim}")
    code = _IDX_CODES[key]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    p = Path(path)
    if compress is None:
        compress = p.name.endswith(".gz")
    payload = header + body
    with open(p, "wb") as fh:
        fh.write(gzip.compress(payload) if compress else payload)


# ---------------------------------------------------------------------------- files
def from_file(
    path: PathLike,
    key: str | None = None,
    *,
    flatten: bool = True,
    scale: Scale = False,
    centre: bool = False,
) -> np.ndarray:
    """Load samples from a ``.npy``, ``.npz`` or IDX file (raw or ``.gz``).

    Parameters
    ----------
    path : str or path
        ``*.npy``: one array. ``*.npz``: the array named ``key``, or the only array in the archive.
        Anything else is read as IDX (see the module docstring).
    key : str, optional
        Array name inside a ``.npz`` archive with several arrays.
    flatten, scale, centre
        See the module docstring; ``scale`` defaults to ``False`` here (raw values). ``scale=True``
        divides integer data by their type's maximum (255 for uint8).

    Returns
    -------
    ndarray, shape (n, d) float64 (``flatten=True``)
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{p}: cannot read as {suffix} ({exc})") from None
        if suffix == ".npz":
            with loaded as z:
                files = list(z.files)
                if key is None:
                    if len(files) != 1:
                        raise ValueError(
                            f"{p} holds {len(files)} arrays {files}; choose one with key="
                        )
                    key = files[0]
                if key not in files:
                    raise ValueError(f"{p} has no array {key!r}; it holds {files}")
                try:
                    raw = z[key]
                except (ValueError, OSError, EOFError, zlib.error) as exc:
                    raise ValueError(f"{p}: cannot read array {key!r} ({exc})") from None
        else:
            if key is not None:
                raise ValueError(f"key= applies to .npz archives only, not {p.name}")
            raw = loaded
    else:
        if key is not None:
            raise ValueError(f"key= applies to .npz archives only, not {p.name}")
        raw = read_idx(p)
    if raw.dtype == object or not (
        np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_
    ) or np.iscomplexobj(raw):
        raise ValueError(f"{p}: expected real numbers, got dtype {raw.dtype}")
    return _preprocess(raw, flatten=flatten, scale=scale, centre=centre,
                       full_scale=_full_scale(raw.dtype), source=str(p))


# ---------------------------------------------------------------------------- bundled data
def digits(*, flatten: bool = True, scale: Scale = True, centre: bool = False) -> np.ndarray:
    """scikit-learn's handwritten digits: 1797 images of 8×8 pixels (d = 64), values 0..16.

    ``scale=True`` (default) divides by 16, giving [0, 1]. Needs scikit-learn.
    """
    ds = _require("sklearn.datasets", "scikit-learn", "lindiff.datasets.digits")
    images = ds.load_digits().images  # (1797, 8, 8), float, integers 0..16
    return _preprocess(images, flatten=flatten, scale=scale, centre=centre, full_scale=16.0,
                       source="digits")


def lfw(*, flatten: bool = True, scale: Scale = True, centre: bool = False) -> np.ndarray:
    """scikit-image's bundled subset of Labeled Faces in the Wild: 200 grayscale images of 25×25
    (d = 625; 100 faces then 100 non-faces), values already in [0, 1]. Needs scikit-image."""
    data = _require("skimage.data", "scikit-image", "lindiff.datasets.lfw")
    images = data.lfw_subset()
    return _preprocess(images, flatten=flatten, scale=scale, centre=centre, full_scale=1.0,
                       source="lfw")


_LUMA = np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709, as skimage.color.rgb2gray


def _gray(img: Any, name: str) -> tuple[np.ndarray, float]:
    """A 2-D float image in the source's raw units, and that source's full-scale value."""
    a = np.asarray(img)
    full = _full_scale(a.dtype)
    if full is None:
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"image {name}: unsupported dtype {a.dtype}")
        full = 1.0  # float images are taken to be in [0, 1] already
    a = a.astype(np.float64)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        # The weights sum to 1 only up to rounding: clip so that white stays at full scale.
        a = np.clip(a[..., :3] @ _LUMA, 0.0, full)
    elif a.ndim != 2:
        raise ValueError(f"image {name}: expected (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    return a, full


def image_patches(
    k: int = 8,
    n: int = 10_000,
    images: Sequence[Any] | None = None,
    *,
    rng: RNGLike = None,
    flatten: bool = True,
    scale: Scale = True,
    centre: bool = False,
) -> np.ndarray:
    """Random k×k grayscale patches of natural images (d = k²), in random order.

    Each patch is drawn uniformly among all k×k windows of all images (an image is chosen with
    probability proportional to its number of windows, then a window uniformly), independently.

    Parameters
    ----------
    k : int, default 8
        Patch side.
    n : int, default 10000
        Number of patches.
    images : sequence, optional
        Names of scikit-image's bundled images (``skimage.data.<name>``) and/or arrays of shape
        (H, W), (H, W, 3) or (H, W, 4); colour is converted to grayscale with the BT.709 weights.
        Default: :data:`DEFAULT_PATCH_IMAGES` (needs scikit-image; arrays alone need nothing).
    rng : int, Generator or None
        The same seed gives the same patches.
    flatten, scale, centre
        See the module docstring. ``scale=True`` divides by the images' full scale (255 for 8-bit
        images; float images are taken to be in [0, 1]); all images must share it.
    """
    k = as_int(k, "k", 1)
    n = as_int(n, "n", 1)
    if images is None:
        images = DEFAULT_PATCH_IMAGES
    if isinstance(images, (str, np.ndarray)):
        images = [images]
    if len(images) == 0:
        raise ValueError("images is empty")
    grays: list[np.ndarray] = []
    fulls: set[float] = set()
    for i, img in enumerate(images):
        if isinstance(img, str):
            data = _require("skimage.data", "scikit-image", "lindiff.datasets.image_patches")
            loader = getattr(data, img, None)
            if loader is None or not callable(loader):
                raise ValueError(f"scikit-image has no bundled image {img!r}")
            img_arr, name = loader(), img
        else:
            img_arr, name = img, f"#{i}"
        g, full = _gray(img_arr, name)
        if g.shape[0] < k or g.shape[1] < k:
            raise ValueError(f"image {name} of shape {g.shape} is smaller than the patch size {k}")
        grays.append(g)
        fulls.add(full)
    if len(fulls) > 1 and isinstance(scale, (bool, np.bool_)) and scale:
        raise ValueError(
            "images have different full scales (e.g. uint8 and float); convert them first or pass "
            "a number as scale"
        )
    g = as_rng(rng)
    windows = np.array([(a.shape[0] - k + 1) * (a.shape[1] - k + 1) for a in grays], dtype=float)
    which = g.choice(len(grays), size=n, p=windows / windows.sum())
    out = np.empty((n, k, k))
    offs = np.arange(k)
    for i, a in enumerate(grays):
        idx = np.flatnonzero(which == i)
        if idx.size == 0:
            continue
        r = g.integers(0, a.shape[0] - k + 1, size=idx.size)
        c = g.integers(0, a.shape[1] - k + 1, size=idx.size)
        out[idx] = a[(r[:, None] + offs)[:, :, None], (c[:, None] + offs)[:, None, :]]
    return _preprocess(out, flatten=flatten, scale=scale, centre=centre,
                       full_scale=fulls.pop() if len(fulls) == 1 else None, source="image_patches")


def _fashion_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def fashion_mnist(
    path: PathLike | None = None,
    kind: str = "train",
    *,
    n: int | None = None,
    pool: int = 1,
    labels: bool = False,
    flatten: bool = True,
    scale: Scale = True,
    centre: bool = False,
) -> Any:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28×28 grayscale images, d = 784.

    Parameters
    ----------
    path : str or path, optional
        A directory holding ``train-images-idx3-ubyte`` (and/or ``t10k-…``), raw or ``.gz``.
        Default: :data:`DEBIAN_FASHION_MNIST`, where ``apt-get install dataset-fashion-mnist``
        puts them.
    kind : {"train", "test"}
        The 60 000 training images or the 10 000 test images (``"t10k"`` is accepted too).
    n : int, optional
        Keep only the first n images.
    pool : int, default 1
        Average non-overlapping pool×pool blocks (28 must be divisible by pool): ``pool=2`` gives
        14×14 images, d = 196.
    labels : bool, default False
        Also return the class labels (from ``*-labels-idx1-ubyte``) as a second array.
    flatten, scale, centre
        See the module docstring (``scale=True`` divides by 255).

    Raises
    ------
    FileNotFoundError
        When the files are absent, with the install command in the message.
    """
    if kind not in ("train", "test", "t10k"):
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    prefix = "train" if kind == "train" else "t10k"
    directory = Path(DEBIAN_FASHION_MNIST if path is None else path)
    found = _fashion_file(directory, f"{prefix}-images-idx3-ubyte") if directory.is_dir() else None
    if found is None:
        hint = ("install Debian's package (apt-get install dataset-fashion-mnist) or pass path= "
                "a directory holding it") if path is None else "check the directory"
        raise FileNotFoundError(
            f"Fashion-MNIST not found: no {prefix}-images-idx3-ubyte[.gz] in {directory}; {hint}"
        )
    raw = read_idx(found)
    if raw.ndim != 3 or raw.dtype != np.uint8:
        raise ValueError(f"{found}: expected uint8 images of shape (n, H, W), got {raw.dtype} "
                         f"{raw.shape}")
    y = None
    if labels:
        lab = _fashion_file(directory, f"{prefix}-labels-idx1-ubyte")
        if lab is None:
            raise FileNotFoundError(f"no {prefix}-labels-idx1-ubyte[.gz] in {directory}")
        y = read_idx(lab).astype(np.int64)
        if y.shape != (raw.shape[0],):
            raise ValueError(f"{lab}: {y.shape[0]} labels for {raw.shape[0]} images")
    if n is not None:
        n = as_int(n, "n", 1)
        raw = raw[:n]
        y = None if y is None else y[:n]
    pool = as_int(pool, "pool", 1)
    full = 255.0
    if pool > 1:
        h, w = raw.shape[1:]
        if h % pool or w % pool:
            raise ValueError(f"pool = {pool} does not divide the image size {h}×{w}")
        raw = raw.reshape(raw.shape[0], h // pool, pool, w // pool, pool).mean(axis=(2, 4))
    X = _preprocess(raw, flatten=flatten, scale=scale, centre=centre, full_scale=full,
                    source="fashion_mnist")
    return (X, y) if labels else X


# ---------------------------------------------------------------------------- dispatch
_LOADERS: dict[str, Callable[..., Any]] = {
    "digits": digits,
    "patches": image_patches,
    "image_patches": image_patches,
    "lfw": lfw,
    "fashion_mnist": fashion_mnist,
    "fashion-mnist": fashion_mnist,
}


def names() -> list[str]:
    """The data set names :func:`load` knows (besides file paths)."""
    return sorted(_LOADERS)


def load(name: str | os.PathLike[str], **options: Any) -> np.ndarray:
    """Load a data set by name (``digits``, ``patches``, ``lfw``, ``fashion_mnist``) or from a file
    (``.npy``, ``.npz``, IDX); ``options`` go to the loader (see the module docstring).

    Returns
    -------
    ndarray, shape (n, d) float64
    """
    if isinstance(name, str) and name in _LOADERS:
        return _LOADERS[name](**options)
    if isinstance(name, os.PathLike) or (isinstance(name, str) and (
            os.sep in name or Path(name).suffix or Path(name).exists())):
        return from_file(name, **options)
    raise ValueError(f"unknown data set {name!r}: use one of {names()} or a path to a "
                     ".npy/.npz/IDX file")
