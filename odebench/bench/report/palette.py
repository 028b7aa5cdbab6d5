"""One colour and one marker per solver and per method, fixed by name, in every figure of every report.

A figure used to colour its lines by their position in that figure (``C0``, ``C1``, ...), so Euler was green
in one figure and orange in the next. Here a name maps to a colour by a fixed table for the solvers and method
families the library ships, and any other name (a new solver, a method configuration such as ``rf(k=2)``) to a
colour of :data:`EXTRA` chosen by a hash of the name (``hashlib``, not Python's salted ``hash``): the same name
gets the same colour in every figure, process and run. Colours of the fixed tables are tab10/tab20 entries,
told apart in print; the hashed ones come from the rest of tab20 and the dark Set1/Dark2 entries.
"""

from __future__ import annotations

import hashlib
import re

#: solver -> colour (grid variants such as 'euler/edm' take the colour of their solver and a marker of their own)
SOLVERS = {
    "euler": "#2ca02c", "heun": "#9467bd", "midpoint": "#8c564b", "rk4": "#e377c2", "dopri5": "#1f77b4",
    "dpmpp_2m": "#ff7f0e", "dpmpp_2m_sde": "#ffbb78", "dpmpp_3m": "#bcbd22", "euler_maruyama": "#d62728",
    "ddim": "#17becf", "ddim_eta1": "#9edae5", "ancestral": "#7f7f7f", "edm_heun": "#c5b0d5",
    "edm_sde": "#ff9896", "pc": "#8c6d31", "unipc": "#393b79",
}

#: method family (the name before any '(' of its label) -> colour
METHODS = {
    "rf": "#1f77b4", "fm_ot": "#ff7f0e", "fm_diffusion": "#2ca02c", "otcfm": "#d62728", "ddpm": "#9467bd",
    "edm": "#8c564b", "interpolant": "#e377c2", "curvature_min": "#7f7f7f", "score_ve": "#bcbd22",
    # the few-step families: the last tab10 colour, black and dark entries none of the above is near (at least
    # 60 apart in RGB from every other family; hashed, MeanFlow drew in a blue 25 from rf's and the shortcut
    # model in the interpolant's pink)
    "meanflow": "#17becf", "shortcut": "#000000", "consistency_training": "#393b79",
    "consistency_distillation": "#1b9e77",
}

#: colours a name outside the tables may hash to (none of the METHODS colours)
EXTRA = ("#aec7e8", "#98df8a", "#c49c94", "#f7b6d2", "#dbdb8d", "#637939", "#8c6d31",
         "#843c39", "#7b4173", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
         "#e41a1c", "#377eb8", "#4daf4a")

#: solver label -> marker, a different one for every sampler label of the built-in specs (hashed, dopri5 and
#: euler_maruyama shared one, and the consistency sampler another's): filled shapes for the study tiers' samplers,
#: the thin ones for the rest
SOLVER_MARKERS = {
    "euler": "o", "heun": "s", "dopri5": "D", "euler_maruyama": "v", "dpmpp_2m/logsnr": "^", "euler/edm": "p",
    "euler_maruyama/edm": "h", "edm_heun/edm": "X", "edm_sde/edm": "H", "consistency/edm": "P", "flow_map": ">",
    "pc": "<", "ddim/logsnr": "d", "unipc/logsnr": "8", "rk4": "*",
    "ancestral": "1", "heun/edm": "2", "euler/logsnr": "3", "dpmpp_2m/edm": "4", "ddim_eta1/logsnr": "+",
    "dpmpp_2m_sde/logsnr": "x", "dpmpp_3m/logsnr": "|",
}

#: markers any other name takes by hash (a method or metric in paths_vs_round, a solver label outside the
#: table, which may then share a table label's marker)
MARKERS = "osD^vP*X<>ph"


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def family(label: str) -> str:
    """The method family of a label: 'rf(k=2, distill=True) [train.steps=300]' -> 'rf'."""
    return re.split(r"[(\s\[]", label.strip(), maxsplit=1)[0]


def solver_color(name: str) -> str:
    """The colour of a solver ('euler', 'euler/edm' -> Euler's colour); a new name hashes to a stable one."""
    base = name.split("/", 1)[0]
    return SOLVERS.get(base) or EXTRA[_hash(base) % len(EXTRA)]


#: how far a configuration's colour is mixed towards black (< 0) or white (> 0) from its family's
SHADES = (-0.5, -0.28, 0.28)
#: line styles of a family's configurations (its plain label is solid)
STYLES = ("--", "-.", ":", (0, (5, 1, 1, 1)))


def _mix(color: str, amount: float) -> str:
    """``color`` (#rrggbb) mixed towards black (amount < 0) or white (amount > 0) by |amount|."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    target = 0 if amount < 0 else 255
    out = [round(c + abs(amount) * (target - c)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in out)


def family_color(fam: str) -> str:
    """The colour of a method family: the table's, or a stable hashed one."""
    return METHODS.get(fam) or EXTRA[_hash(fam) % len(EXTRA)]


def method_color(label: str) -> str:
    """The colour of a method label: its family's for the plain label ('rf', 'edm'), and for a configuration of
    it ('rf(k=2)') the family's colour darkened or lightened by a stable hash of the label, so that a family
    reads as one hue in every figure."""
    fam = family(label)
    base = family_color(fam)
    return base if label == fam else _mix(base, SHADES[_hash(label) % len(SHADES)])


def method_style(label: str):
    """The line style of a method label: solid for a family's plain label, a stable hashed dash for a
    configuration of it (with :func:`method_color`, configurations of one family stay apart)."""
    return "-" if label == family(label) else STYLES[_hash(label + "/style") % len(STYLES)]


def marker_of(name: str) -> str:
    """A stable marker for any name: a solver label's from :data:`SOLVER_MARKERS`, else one hashed from the name
    (a method in paths_vs_round, a solver grid variant outside the table)."""
    return SOLVER_MARKERS.get(name) or MARKERS[_hash(name) % len(MARKERS)]
