"""An odebench method in its own package: flow matching on the trigonometric path.

x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0, target u = (pi / 2)(cos(pi t / 2) x1 - sin(pi t / 2) x0). The
class subclasses odebench's affine flow matching and only picks the path; ``@register_method`` names it,
and the ``odebench.methods`` entry point in pyproject.toml makes odebench import it.
"""

from odebench.methods import register_method
from odebench.methods.flow_matching import AffineFlowMatching
from odebench.methods.probability_paths import TrigPath


@register_method("fm_trig")
class FlowMatchingTrig(AffineFlowMatching):
    """Flow matching with the trigonometric (variance-preserving for N(0, I) data) path."""

    reference = "arXiv:2209.15571"
    citation = ("Albergo, Vanden-Eijnden. Building Normalizing Flows with Stochastic Interpolants. "
                "ICLR 2023. arXiv:2209.15571")

    def __init__(self):
        super().__init__()
        self.path = TrigPath()
