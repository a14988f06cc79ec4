"""Pieces of the open hand model generator (``tools/generate_open_hand.py``).

anatomy: proportions with their sources and the skeleton; surface: implicit surface and
meshing; rig: skinning weights, joint regressor and shape directions.
"""
