"""ssechat's benchmark: a load generator, the peers it compares, and the report it writes.

Run it with ``make bench`` (or ``python -m bench.run``); see ``bench/README.md``.
"""
