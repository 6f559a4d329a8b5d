"""Product photos: a garment silhouette on a light studio background.

SHAPE follows the product group/type (trousers, dress, top, shoe, bag, ...), COLOUR the
colour group (RGB close to its name) and TEXTURE the graphical appearance (stripes, dots,
checks, melange noise, denim twill...), so an image model can recover all three.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.synthetic.colours import colour_rgb

# (x, y) polygons in a unit box; scaled to the image size.
SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "trousers": [[(0.30, 0.10), (0.70, 0.10), (0.74, 0.92), (0.56, 0.92), (0.50, 0.38), (0.44, 0.92), (0.26, 0.92)]],
    "shorts": [[(0.28, 0.30), (0.72, 0.30), (0.76, 0.66), (0.54, 0.66), (0.50, 0.50), (0.46, 0.66), (0.24, 0.66)]],
    "skirt": [[(0.36, 0.22), (0.64, 0.22), (0.78, 0.80), (0.22, 0.80)]],
    "dress": [[(0.40, 0.08), (0.60, 0.08), (0.62, 0.35), (0.80, 0.92), (0.20, 0.92), (0.38, 0.35)]],
    "top": [
        [
            (0.32, 0.15),
            (0.42, 0.12),
            (0.58, 0.12),
            (0.68, 0.15),
            (0.88, 0.40),
            (0.78, 0.46),
            (0.70, 0.34),
            (0.70, 0.85),
            (0.30, 0.85),
            (0.30, 0.34),
            (0.22, 0.46),
            (0.12, 0.40),
        ]
    ],
    "vest": [
        [(0.38, 0.12), (0.44, 0.12), (0.46, 0.25), (0.54, 0.25), (0.56, 0.12), (0.62, 0.12), (0.66, 0.85), (0.34, 0.85)]
    ],
    "jacket": [
        [
            (0.30, 0.12),
            (0.70, 0.12),
            (0.90, 0.80),
            (0.78, 0.82),
            (0.72, 0.40),
            (0.72, 0.90),
            (0.28, 0.90),
            (0.28, 0.40),
            (0.22, 0.82),
            (0.10, 0.80),
        ]
    ],
    "bra": [[(0.18, 0.40), (0.34, 0.30), (0.50, 0.44), (0.66, 0.30), (0.82, 0.40), (0.78, 0.58), (0.22, 0.58)]],
    "briefs": [[(0.22, 0.36), (0.78, 0.36), (0.62, 0.66), (0.38, 0.66)]],
    "socks": [[(0.40, 0.15), (0.56, 0.15), (0.56, 0.62), (0.76, 0.72), (0.72, 0.85), (0.40, 0.80)]],
    "shoe": [[(0.12, 0.55), (0.42, 0.50), (0.60, 0.38), (0.72, 0.38), (0.88, 0.62), (0.88, 0.72), (0.12, 0.72)]],
    "bag": [
        [(0.22, 0.40), (0.78, 0.40), (0.82, 0.85), (0.18, 0.85)],
        [
            (0.36, 0.40),
            (0.40, 0.22),
            (0.60, 0.22),
            (0.64, 0.40),
            (0.58, 0.40),
            (0.56, 0.28),
            (0.44, 0.28),
            (0.42, 0.40),
        ],
    ],
    "hat": [
        [
            (0.16, 0.62),
            (0.30, 0.60),
            (0.34, 0.36),
            (0.50, 0.28),
            (0.66, 0.36),
            (0.70, 0.60),
            (0.84, 0.62),
            (0.84, 0.68),
            (0.16, 0.68),
        ]
    ],
    "bikini": [
        [(0.26, 0.24), (0.46, 0.24), (0.36, 0.40)],
        [(0.54, 0.24), (0.74, 0.24), (0.64, 0.40)],
        [(0.30, 0.56), (0.70, 0.56), (0.56, 0.74), (0.44, 0.74)],
    ],
    "jewellery": [[(0.50, 0.30), (0.64, 0.40), (0.64, 0.60), (0.50, 0.70), (0.36, 0.60), (0.36, 0.40)]],
    "box": [[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]],
}
TYPE_SHAPE = {
    "Trousers": "trousers",
    "Leggings/Tights": "trousers",
    "Shorts": "shorts",
    "Skirt": "skirt",
    "Vest top": "vest",
    "Jacket": "jacket",
    "Coat": "jacket",
    "Blazer": "jacket",
    "Cardigan": "jacket",
    "Bra": "bra",
    "Bikini top": "bikini",
    "Swimwear bottom": "briefs",
    "Underwear bottom": "briefs",
    "Socks": "socks",
    "Underwear Tights": "trousers",
    "Hat/beanie": "hat",
    "Beanie": "hat",
    "Hat/brim": "hat",
    "Cap/peaked": "hat",
    "Felt hat": "hat",
    "Bag": "bag",
    "Earring": "jewellery",
    "Necklace": "jewellery",
    "Ring": "jewellery",
    "Bracelet": "jewellery",
    "Dungarees": "trousers",
    "Pyjama bottom": "trousers",
}
GROUP_SHAPE = {
    "Garment Upper body": "top",
    "Garment Lower body": "trousers",
    "Garment Full body": "dress",
    "Underwear": "briefs",
    "Socks & Tights": "socks",
    "Swimwear": "bikini",
    "Shoes": "shoe",
    "Accessories": "jewellery",
    "Bags": "bag",
    "Nightwear": "top",
}
BACKGROUND = np.array([238, 236, 233], dtype=np.float32)


def shape_for(product_type: str, product_group: str) -> str:
    return TYPE_SHAPE.get(product_type) or GROUP_SHAPE.get(product_group, "box")


@lru_cache(maxsize=64)
def silhouette(shape: str, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of the garment."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in SHAPES[shape]:
        draw.polygon([(x * width, y * height) for x, y in poly], fill=255)
    return np.asarray(canvas) > 127


@lru_cache(maxsize=64)
def outline(shape: str, width: int, height: int) -> np.ndarray:
    """Boolean mask of the garment's edge pixels (inside the silhouette, next to the background)."""
    mask = silhouette(shape, width, height)
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


@lru_cache(maxsize=8)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy, xx


def texture(appearance: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(height, width) brightness multiplier in about [0.35, 1.25] for the pattern."""
    yy, xx = _grid(width, height)
    period = max(4.0, width / rng.uniform(7, 12))
    phase = rng.uniform(0, period)
    flat = np.ones((height, width), dtype=np.float32)
    if appearance == "Stripe":
        return np.where(((yy + phase) // (period / 2)) % 2 == 0, 1.0, 0.45).astype(np.float32)
    if appearance == "Check":
        a = ((yy + phase) // (period / 2)) % 2
        b = ((xx + phase) // (period / 2)) % 2
        return (1.0 - 0.3 * a - 0.3 * b).astype(np.float32)
    if appearance == "Dot":
        r = period / 5
        dy = (yy + phase) % period - period / 2
        dx = (xx + phase) % period - period / 2
        return np.where(dx * dx + dy * dy < r * r, 1.25, 0.8).astype(np.float32)
    if appearance == "Melange":
        return (0.8 + 0.4 * rng.random((height, width))).astype(np.float32)
    if appearance in ("Denim", "Chambray"):
        twill = 0.85 + 0.15 * np.sin((xx + yy) * 2.0)
        return (twill * (0.85 + 0.25 * rng.random((height, width)))).astype(np.float32)
    if appearance in ("All over pattern", "Other pattern", "Jacquard"):
        return (0.8 + 0.25 * np.sin(xx / period * 6.28 + phase) * np.sin(yy / period * 6.28)).astype(np.float32)
    if appearance in ("Lace", "Mesh", "Other structure"):
        return np.where(((xx.astype(int) + yy.astype(int)) % 3) == 0, 0.6, 1.0).astype(np.float32)
    if appearance in ("Placement print", "Front print", "Application/3D", "Embroidery"):
        box = (np.abs(xx - width / 2) < width * 0.12) & (np.abs(yy - height * 0.45) < height * 0.08)
        return np.where(box, 0.35, 1.0).astype(np.float32)
    if appearance == "Colour blocking":
        return np.where(yy > height * 0.5, 0.55, 1.0).astype(np.float32)
    if appearance in ("Glittering/Metallic", "Metallic", "Sequin"):
        return (0.85 + 0.4 * (rng.random((height, width)) > 0.85)).astype(np.float32)
    return flat


def render(
    product_type: str,
    product_group: str,
    colour_name: str,
    appearance: str,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> Image.Image:
    width, height = size
    mask = silhouette(shape_for(product_type, product_group), width, height)
    rgb = np.array(colour_rgb(colour_name), dtype=np.float32)
    # Soft vertical shading so flat colours still look like cloth.
    shade = 0.92 + 0.08 * np.cos(np.linspace(-1.2, 1.2, width, dtype=np.float32))[None, :]
    cloth = rgb[None, None, :] * (texture(appearance, width, height, rng) * shade)[:, :, None]
    if rgb.mean() < 60:  # dark garments: patterns lighten instead of darken
        cloth = rgb + (cloth - rgb) * -1.5
    img = np.where(mask[:, :, None], cloth, BACKGROUND[None, None, :])
    # A soft seam along the outline keeps white garments visible on the light background.
    img[outline(shape_for(product_type, product_group), width, height)] *= 0.8
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def image_path(images_dir: Path, article_id: str) -> Path:
    return images_dir / article_id[:3] / f"{article_id}.jpg"


def write_images(images_dir: Path, articles, size: tuple[int, int], seed: int) -> int:
    """Write one JPEG per article row (a DataFrame with the public columns); returns the count."""
    rng = np.random.default_rng([seed, 7])
    cols = articles[
        ["article_id", "product_type_name", "product_group_name", "colour_group_name", "graphical_appearance_name"]
    ].to_numpy(dtype=object)
    made: set[str] = set()
    for article_id, ptype, group, colour, app in cols:
        folder = article_id[:3]
        if folder not in made:
            (images_dir / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        render(ptype, group, colour, app, size, rng).save(image_path(images_dir, article_id), quality=88)
    return len(cols)
