"""Torch modules, each built from its config node by ``hydra.utils.instantiate``."""
