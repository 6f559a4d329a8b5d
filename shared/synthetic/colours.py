"""RGB values close to each H&M colour group name, for product photos."""
from __future__ import annotations

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "Black": (25, 25, 28), "White": (245, 245, 242), "Off White": (236, 232, 220), "Dark Blue": (28, 40, 80),
    "Blue": (45, 90, 170), "Light Blue": (150, 190, 225), "Beige": (205, 185, 150), "Light Beige": (228, 215, 190),
    "Dark Beige": (170, 145, 110), "Greyish Beige": (180, 170, 150), "Light Pink": (240, 195, 205),
    "Pink": (230, 130, 165), "Dark Pink": (190, 60, 110), "Other Pink": (220, 110, 150), "Grey": (140, 140, 140),
    "Dark Grey": (75, 75, 78), "Light Grey": (200, 200, 200), "Yellowish Brown": (160, 115, 50),
    "Greenish Khaki": (120, 120, 75), "Gold": (205, 165, 60), "Silver": (190, 190, 195),
    "Bronze/Copper": (175, 105, 60), "Light Orange": (245, 180, 120), "Orange": (240, 130, 40),
    "Dark Orange": (200, 90, 30), "Other Orange": (230, 120, 60), "Dark Red": (120, 20, 30), "Red": (200, 30, 40),
    "Light Red": (235, 110, 110), "Other Red": (180, 40, 50), "Dark Green": (30, 70, 45), "Green": (60, 140, 70),
    "Light Green": (160, 210, 150), "Yellow": (245, 215, 50), "Light Yellow": (250, 240, 160),
    "Dark Yellow": (210, 170, 30), "Light Purple": (200, 175, 220), "Purple": (120, 60, 150),
    "Dark Purple": (70, 30, 90), "Other Purple": (150, 90, 170), "Light Turquoise": (160, 220, 215),
    "Turquoise": (50, 180, 170), "Dark Turquoise": (20, 110, 110), "Other": (150, 120, 130),
    "Unknown": (128, 128, 128), "Transparent": (225, 230, 235), "Yellowish Green": (170, 190, 60),
    "Other Green": (90, 150, 90), "Other Yellow": (235, 205, 90), "Other Blue": (80, 120, 190),
    "Other Turquoise": (70, 170, 160),
}


def colour_rgb(name: str) -> tuple[int, int, int]:
    return COLOUR_RGB.get(name, (128, 128, 128))
