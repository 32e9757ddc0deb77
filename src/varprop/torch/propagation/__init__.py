"""The statistics of every tensor of a traced model at initialization, node by node: the ``Stat`` value, the plan
(``Context``: what is decided and written), and one rule per layer type or operation (weight layers, normalizations,
attention, recurrent layers, residual branches, elementwise formulas, directly used parameters, unknown operations),
dispatched by ``propagate``; then one-pass calibration and the measured uses of tied weights.

Implementation of ``varprop.torch`` (its public names are there).
"""
