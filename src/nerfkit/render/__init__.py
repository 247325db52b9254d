"""The NeRF maths as small pure functions: encodings, sampling, volume rendering, NDC.

Nothing here knows about files, scenes or training.
"""
