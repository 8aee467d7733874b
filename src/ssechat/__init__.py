"""ssechat: a self-hosted ChatGPT-style chat server streaming over Server-Sent Events."""

__version__ = "0.1.0"
