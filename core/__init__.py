"""The neutral base every layer may import: errors, frame schemas, symbols and content hashing.

Nothing here imports ``warehouse``, ``tasks`` or ``flows``; see ``docs/design.md``.
"""
