"""Product names and ``detail_desc`` texts built from an article's attributes.

The words a description uses follow its product group and graphical appearance, so text
search and text features carry real signal (a "striped" query finds Stripe articles).
"""

from __future__ import annotations

import numpy as np

MATERIALS: dict[str, list[str]] = {
    "Garment Upper body": [
        "soft cotton jersey",
        "a fine knit",
        "sweatshirt fabric",
        "a woven viscose weave",
        "a cotton blend",
        "ribbed jersey",
        "a soft wool blend",
    ],
    "Garment Lower body": [
        "stretch cotton twill",
        "washed stretch denim",
        "a woven fabric",
        "soft jersey",
        "a crêpe weave",
        "linen-blend fabric",
    ],
    "Garment Full body": ["a woven viscose weave", "soft jersey", "a crinkled chiffon", "airy cotton", "a satin weave"],
    "Underwear": ["microfibre", "soft cotton jersey", "lace", "a soft mesh"],
    "Socks & Tights": ["a soft cotton blend", "fine-knit microfibre", "semi-matte 20 denier"],
    "Swimwear": ["recycled swimwear fabric", "textured swimwear fabric"],
    "Shoes": ["imitation leather", "suede", "canvas", "rubber"],
    "Accessories": ["metal", "imitation leather", "a soft knit", "woven straw", "satin"],
    "Nightwear": ["soft cotton flannel", "a satin weave", "soft jersey"],
}
FEATURES: dict[str, list[str]] = {
    "Garment Upper body": [
        "a round neckline",
        "long sleeves",
        "short sleeves",
        "a V-neck",
        "dropped shoulders",
        "ribbing at the cuffs and hem",
        "a chest pocket",
        "buttons down the front",
        "a hood",
    ],
    "Garment Lower body": [
        "a high waist",
        "a zip fly and button",
        "side pockets",
        "an elasticated waist",
        "straight legs",
        "wide legs",
        "slim legs",
        "raw-edge hems",
    ],
    "Garment Full body": [
        "a V-neck",
        "narrow shoulder straps",
        "a tie belt at the waist",
        "a flared skirt",
        "short puff sleeves",
        "a concealed zip at the back",
    ],
    "Underwear": ["an elasticated waist", "lined cups", "adjustable shoulder straps", "a lined gusset"],
    "Socks & Tights": ["a short shaft", "reinforced heels and toes", "an elasticated waist"],
    "Swimwear": ["adjustable straps", "a lined front", "high-cut legs", "ties at the sides"],
    "Shoes": ["a rounded toe", "a padded insole", "a block heel", "lacing at the front", "rubber soles"],
    "Accessories": ["a lobster clasp", "an adjustable strap", "a metal buckle", "a zipped compartment"],
    "Nightwear": ["an elasticated waist", "a collar and buttons", "long sleeves"],
}
FITS = ["Regular-fit", "Relaxed-fit", "Fitted", "Oversized", "Slim-fit", "Short", "Long"]
APPEARANCE_WORDS: dict[str, str] = {
    "Stripe": "Striped",
    "Dot": "Spotted",
    "Check": "Checked",
    "Melange": "Marl",
    "Denim": "Denim",
    "All over pattern": "Patterned",
    "Lace": "Lace",
    "Placement print": "Printed",
    "Front print": "Printed",
    "Embroidery": "Embroidered",
    "Colour blocking": "Colour-block",
    "Glittering/Metallic": "Glittery",
    "Metallic": "Metallic",
    "Sequin": "Sequined",
    "Jacquard": "Jacquard-knit",
}
GENERIC_MATERIALS = ["a soft fabric"]
GENERIC_FEATURES = ["a classic shape", "neat details"]


def prod_names(rng: np.random.Generator, stems: list[str], type_names: np.ndarray) -> np.ndarray:
    """'<stem> <product type>' (e.g. 'Lana trousers'), the way H&M names read."""
    chosen = np.asarray(stems, dtype=object)[rng.integers(0, len(stems), len(type_names))]
    return np.array([f"{s} {t.split('/')[0].lower()}" for s, t in zip(chosen, type_names, strict=True)], dtype=object)


def detail_descs(
    rng: np.random.Generator, type_names: np.ndarray, groups: np.ndarray, appearances: np.ndarray
) -> np.ndarray:
    """One or two sentences: fit + appearance + type, material, two features."""
    out = np.empty(len(type_names), dtype=object)
    picks = rng.integers(0, 1 << 30, size=(len(type_names), 4))
    for i, (tname, group, app) in enumerate(zip(type_names, groups, appearances, strict=True)):
        mats = MATERIALS.get(group, GENERIC_MATERIALS)
        feats = FEATURES.get(group, GENERIC_FEATURES)
        p = picks[i]
        lead = APPEARANCE_WORDS.get(app) or FITS[p[0] % len(FITS)]
        material = "washed denim" if app == "Denim" else mats[p[1] % len(mats)]
        f1, f2 = feats[p[2] % len(feats)], feats[(p[2] + 1 + p[3] % max(1, len(feats) - 1)) % len(feats)]
        out[i] = f"{lead} {tname.split('/')[0].lower()} in {material} with {f1} and {f2}."
    return out
