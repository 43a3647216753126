"""Latent Lab core: data, autoencoders, training, checkpoints, latent-space tools.

Never imports streamlit: usable from a notebook, the CLI (`python -m core`) and the app alike.
"""

__version__ = "0.1.0"
