"""A 5x7 bitmap font (capital letters, digits, a few symbols) for the preview's labels: text
without a font file or an imaging library."""
from __future__ import annotations

import numpy as np

# Each glyph: 7 rows of 5 columns, top row first, '#' lit.
_ROWS = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
}
GLYPHS = {char: np.array([[c == "#" for c in row] for row in rows.split()])
          for char, rows in _ROWS.items()}
HEIGHT, WIDTH = 7, 5


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The lit pixels of `text` (upper-cased), one blank column between glyphs, each pixel
    a scale x scale block."""
    glyphs = []
    for char in text.upper():
        if char not in GLYPHS:
            raise ValueError(f"no glyph for {char!r}")
        glyphs += [GLYPHS[char], np.zeros((HEIGHT, 1), bool)]
    mask = np.concatenate(glyphs[:-1], axis=1) if glyphs else np.zeros((HEIGHT, 0), bool)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def draw_text(rgb: np.ndarray, text: str, top: int, left: int, colour, scale: int = 1) -> None:
    """Paint `text` into `rgb` in place on a black box one scaled pixel wider on each side
    (readable over any image); whatever falls outside the array is cut off."""
    mask = np.pad(text_mask(text, scale), scale)
    top, left = top - scale, left - scale
    rows = slice(max(top, 0), min(top + mask.shape[0], rgb.shape[0]))
    cols = slice(max(left, 0), min(left + mask.shape[1], rgb.shape[1]))
    visible = mask[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
    rgb[rows, cols] = np.where(visible[..., None], np.asarray(colour, np.uint8), np.uint8(0))
