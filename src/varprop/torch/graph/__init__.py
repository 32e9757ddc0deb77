"""What the model is: its dataflow graph on an example input (torch.fx, or one recorded forward pass), the module
kinds the rules know, the activations torch spells, and other libraries' modules recognized by what they compute.

Implementation of ``varprop.torch`` (its public names are there); imports nothing else of the adapter.
"""
