"""What one odebench process sets up around its work: the device, precision and compilation it computes with
(``runtime``), its rank among the processes of a ``torchrun`` launch (``distributed``), the progress line it draws
and the channel that training steps reach it through (``progress``), and when it takes Ctrl-C (``interrupts``).
Each is a leaf that imports no other part of the harness, so the spec, the training loop and the executors may
all import it.
"""
