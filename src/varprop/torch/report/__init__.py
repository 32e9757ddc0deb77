"""What ``init_model`` reports (``InitReport``) and what can be measured on a model afterwards: signal propagation
statistics (``signal_stats``) and the singular values of the input-output Jacobian (``jacobian_spectrum``).

Implementation of ``varprop.torch`` (its public names are there).
"""
