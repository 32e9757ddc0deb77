"""Meta-device and sharded (DTensor, FSDP2) models: drawing only the elements a rank holds, tracing on global shapes,
and the statistics pooled over the mesh.

Implementation of ``varprop.torch`` (its public names are there).
"""
