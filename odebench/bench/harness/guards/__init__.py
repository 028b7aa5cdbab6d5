"""Small shared leaves that keep what a user hands the harness from doing harm: the one exception a refused run
raises (``errors``), the "did you mean" of an unknown name (``suggest``), where the harness may write and delete
(``safe_paths``), and how it reads back a file it did not write (``bounded_read``). They import no other part of
the harness, so every other part may import them.
"""
