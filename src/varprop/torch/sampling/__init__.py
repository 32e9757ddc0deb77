"""How values are drawn: fans of weight tensors, the rank-invariant seeded draws (blocks of rows, each from its own
generator) and the orthogonal and delta-orthogonal unit tensors made from them.

Implementation of ``varprop.torch`` (its public names are there).
"""
